//! What a document is built from, read from the stores in one place, so the API and the offline
//! `tagstream report` command build the same document from the same data.

use super::hit_pack::HitPackInput;
use super::map_figure::TileSource;
use super::DocumentError;
use crate::model::Person;
use crate::store::crime_store::{CrimeStore, StoredHit};
use crate::store::metadata::Metadata;

/// Everything a hit evidence pack needs besides the deployment's settings.
pub struct HitPackSources {
    pub stored: StoredHit,
    /// The crime row's free text.
    pub other_info: String,
    /// The tag of the hit's activation (empty when the activation is gone).
    pub device_id: String,
    pub person: Option<Person>,
}

impl HitPackSources {
    /// Reads what the pack of `stored` quotes: the crime's free text, the tag, the person.
    pub fn read(
        crimes: &CrimeStore,
        metadata: &Metadata,
        stored: StoredHit,
    ) -> Result<HitPackSources, DocumentError> {
        let h = &stored.hit;
        let other_info = crimes
            .crime_document(&h.force, &h.crime_ref, h.crime_version)?
            .and_then(|c| c["other_info"].as_str().map(str::to_string))
            .unwrap_or_default();
        let device_id = metadata
            .activations_with_ids(&[h.activation.as_str()])?
            .remove(&h.activation)
            .map(|a| a.tag.to_string())
            .unwrap_or_default();
        let person = metadata.person(&h.person)?;
        Ok(HitPackSources {
            stored,
            other_info,
            device_id,
            person,
        })
    }

    pub fn input<'a>(
        &'a self,
        declaration: &'a str,
        tiles: Option<&'a dyn TileSource>,
    ) -> HitPackInput<'a> {
        HitPackInput {
            stored: &self.stored,
            other_info: &self.other_info,
            device_id: &self.device_id,
            person: self.person.as_ref(),
            declaration,
            tiles,
        }
    }
}
