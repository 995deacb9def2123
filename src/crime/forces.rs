//! The 19 EMAC police forces and the 7 acquisitive crime types police batches use (domain page
//! section 4), with lookups.
//!
//! A force has three names: the identifier a batch row carries in column 0 (`AvonSomerset`), the
//! code its batch ids start with (`AVS`), and the display name data.police.uk files use in
//! "Reported by" (`Avon and Somerset Constabulary`).

use serde::Serialize;

/// One EMAC force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Force {
    /// Column 0 of a police batch row, e.g. `AvonSomerset`.
    pub id: &'static str,
    /// The prefix of the force's batch ids, e.g. `AVS`.
    pub code: &'static str,
    /// The force's name as people (and data.police.uk) write it.
    pub name: &'static str,
}

const fn force(id: &'static str, code: &'static str, name: &'static str) -> Force {
    Force { id, code, name }
}

/// The 19 EMAC forces, in the domain page's order.
pub const FORCES: [Force; 19] = [
    force("AvonSomerset", "AVS", "Avon and Somerset Constabulary"),
    force("Bedfordshire", "BFD", "Bedfordshire Police"),
    force("Cheshire", "CHS", "Cheshire Constabulary"),
    force("CoLP", "CoLP", "City of London Police"),
    force("Cumbria", "CMB", "Cumbria Constabulary"),
    force("Derbyshire", "DBY", "Derbyshire Constabulary"),
    force("Durham", "DUR", "Durham Constabulary"),
    force("Essex", "ESX", "Essex Police"),
    force("Gloucestershire", "GLC", "Gloucestershire Constabulary"),
    force("Gwent", "GWP", "Gwent Police"),
    force("Hampshire", "HAM", "Hampshire Constabulary"),
    force("Hertfordshire", "HRT", "Hertfordshire Constabulary"),
    force("Humberside", "HMB", "Humberside Police"),
    force("Kent", "KNT", "Kent Police"),
    force("Metropolitan", "MPS", "Metropolitan Police Service"),
    force("NorthWales", "NWL", "North Wales Police"),
    force("Nottinghamshire", "NOT", "Nottinghamshire Police"),
    force("Sussex", "SXP", "Sussex Police"),
    force("WestMidlands", "WMP", "West Midlands Police"),
];

/// One crime type a police batch may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CrimeType {
    /// Column 1 of a police batch row, e.g. `BIAD`.
    pub id: &'static str,
    /// What the id stands for, e.g. `Burglary in a dwelling`.
    pub description: &'static str,
}

const fn crime_type(id: &'static str, description: &'static str) -> CrimeType {
    CrimeType { id, description }
}

/// The 7 crime types of the police batch format.
pub const CRIME_TYPES: [CrimeType; 7] = [
    crime_type("RB", "Robbery"),
    crime_type("BIAD", "Burglary in a dwelling"),
    crime_type("AB", "Aggravated burglary"),
    crime_type("BOTD", "Burglary in a building other than a dwelling"),
    crime_type("TOMV", "Theft of a motor vehicle"),
    crime_type("TFP", "Theft from the person"),
    crime_type("TFMV", "Theft from a motor vehicle"),
];

/// The force whose column-0 identifier is `id` (exact, case-sensitive).
pub fn force_by_id(id: &str) -> Option<&'static Force> {
    FORCES.iter().find(|f| f.id == id)
}

/// The force whose batch-id code is `code` (exact, case-sensitive: `CoLP`).
pub fn force_by_code(code: &str) -> Option<&'static Force> {
    FORCES.iter().find(|f| f.code == code)
}

/// The force whose display name is `name`, as data.police.uk's "Reported by" writes it.
pub fn force_by_name(name: &str) -> Option<&'static Force> {
    FORCES.iter().find(|f| f.name == name)
}

/// The crime type whose id is `id` (exact, case-sensitive).
pub fn crime_type_by_id(id: &str) -> Option<&'static CrimeType> {
    CRIME_TYPES.iter().find(|t| t.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn identifiers_codes_and_names_are_unique_and_found() {
        for table in [
            FORCES.map(|f| f.id),
            FORCES.map(|f| f.code),
            FORCES.map(|f| f.name),
        ] {
            assert_eq!(table.iter().collect::<HashSet<_>>().len(), FORCES.len());
        }
        for f in &FORCES {
            assert_eq!(force_by_id(f.id), Some(f));
            assert_eq!(force_by_code(f.code), Some(f));
            assert_eq!(force_by_name(f.name), Some(f));
        }
        assert_eq!(force_by_code("MPS").map(|f| f.id), Some("Metropolitan"));
        assert_eq!(force_by_id("Atlantis"), None);
        assert_eq!(force_by_id("metropolitan"), None);
    }

    #[test]
    fn crime_types_are_the_seven_of_the_batch_format() {
        assert_eq!(
            crime_type_by_id("TFMV").map(|t| t.description),
            Some("Theft from a motor vehicle")
        );
        assert_eq!(crime_type_by_id("XYZ"), None);
        let ids: HashSet<_> = CRIME_TYPES.iter().map(|t| t.id).collect();
        assert_eq!(ids.len(), 7);
    }
}
