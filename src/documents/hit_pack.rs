//! The hit evidence pack: what police receive about one hit, as a PDF and as JSON of the same
//! content, with a manifest (`manifest`). It holds the crime, a map of the evidence, the
//! distance-to-crime chart, the table of positions, how the hit was decided, the hub's review
//! and a witness statement laid out for a signature.
//!
//! About the person it holds exactly what the hub's 18-column CSV holds for that hit (subject
//! identifier, name, NOMIS id, PNC reference, address, date of birth, offender manager, device):
//! no curfew addresses, orders or other alerts.

use super::distance_chart::distance_chart_svg;
use super::layout::{render, Block, Document, Figure, Table};
use super::manifest::{sha256_hex, Manifest, ManifestFile};
use super::map_figure::{draw_map, MapLayers, MapPosition, TileSource};
use super::text;
use super::DocumentError;
use crate::model::time::format_time;
use crate::model::{BatchSeq, Certainty, HitAlgorithm, Person, PositionSource};
use crate::store::crime_store::{HitState, StoredHit};
use serde::Serialize;
use serde_json::{json, Value};

/// Bumped whenever the pack's layout or content changes, so a regenerated pack is compared with
/// the layout it was made with.
pub const LAYOUT_VERSION: u32 = 1;

/// The declaration printed above the signature when the deployment configures none: the
/// wording of a criminal justice witness statement (Criminal Justice Act 1967, s. 9).
pub const DEFAULT_DECLARATION: &str = "This statement is true to the best of my knowledge and \
belief and I make it knowing that, if it is tendered in evidence, I shall be liable to \
prosecution if I have wilfully stated in it anything which I know to be false, or do not \
believe to be true.";

/// What the pack is built from, as the stores hold it.
pub struct HitPackInput<'a> {
    pub stored: &'a StoredHit,
    /// The crime row's free text (`other_info`), as in the CSV.
    pub other_info: &'a str,
    /// The tag of the hit's activation.
    pub device_id: &'a str,
    pub person: Option<&'a Person>,
    /// The batch each of the hit's positions came in (empty, or one per position; `None`
    /// where the trail store does not know it).
    pub position_batches: &'a [Option<BatchSeq>],
    /// The deployment's witness declaration.
    pub declaration: &'a str,
    /// The deployment's street tiles, if any.
    pub tiles: Option<&'a dyn TileSource>,
}

/// The pack's content: the JSON file, and what the PDF lays out.
#[derive(Serialize)]
pub struct HitPack {
    pub document: &'static str,
    pub layout_version: u32,
    pub generator: String,
    pub hit: Value,
    pub crime: Value,
    pub subject: Value,
    pub positions: Vec<Value>,
    pub decision: Value,
    pub review: Value,
    pub map: Value,
    pub witness_statement: Value,
}

/// The three files of a pack.
pub struct HitPackFiles {
    pub pdf: Vec<u8>,
    pub json: Vec<u8>,
    pub manifest: Manifest,
}

fn source_words(source: PositionSource) -> &'static str {
    match source {
        PositionSource::Gps => "GPS",
        PositionSource::Lbs => "cell (LBS)",
        PositionSource::Wifi => "Wi-Fi",
    }
}

fn opt_text(v: Option<&String>) -> String {
    v.cloned().unwrap_or_default()
}

/// Why the hit is certain or possible, in words.
fn why(stored: &StoredHit) -> String {
    let h = &stored.hit;
    let base = match h.certainty {
        Certainty::Certain => format!(
            "Certain: at least one point of the person's path, with the whole of its confidence \
             circle, was inside the {:.0} m vicinity of the crime during the crime's window.",
            h.radius_m
        ),
        Certainty::Possible => format!(
            "Possible: the confidence circles of the person's path overlapped the {:.0} m \
             vicinity of the crime during the crime's window, but no point's whole circle was \
             inside it.",
            h.radius_m
        ),
    };
    format!(
        "{base} Closest approach {:.1} m at {}; the path was inside the vicinity for about {} \
         of the window.",
        h.closest_m,
        text::uk_time(h.closest_t),
        text::duration(h.inside_s)
    )
}

fn weaker_words(stored: &StoredHit) -> String {
    let h = &stored.hit;
    let weaker = h
        .positions
        .iter()
        .filter(|p| p.source != PositionSource::Gps)
        .count();
    if h.weaker_evidence {
        "Weaker evidence: no GPS fix supports this hit; every fix that qualifies is a cell (LBS) \
         or Wi-Fi fix, whose position is an estimate with a wide confidence circle."
            .into()
    } else if weaker > 0 {
        format!(
            "GPS fixes support this hit. {weaker} of the {} positions are cell (LBS) or Wi-Fi \
             fixes (drawn hollow on the map and chart).",
            h.positions.len()
        )
    } else {
        "GPS fixes support this hit; every position is a GPS fix.".into()
    }
}

fn algorithm_words(a: &HitAlgorithm) -> String {
    format!(
        "{}: vicinity radius {:.0} m; consecutive fixes at most {} apart are joined by a \
         straight path; positions {} before and after the window are shown; fixes less precise \
         than {:.0} m never make a hit on their own; a new sequence letter starts after a gap \
         of more than {}.",
        a.name,
        a.radius_m,
        text::duration(a.max_gap_s),
        text::duration(a.margin_s),
        a.max_precision_m,
        text::duration(a.label_gap_s)
    )
}

/// Builds the pack's content from its inputs (no I/O but the tiles).
pub fn build(input: &HitPackInput) -> (HitPack, String, String) {
    let stored = input.stored;
    let h = &stored.hit;
    let person = input.person;
    let map = draw_map(
        &MapLayers {
            crime: Some((h.crime_lat, h.crime_lon, h.radius_m)),
            positions: h
                .positions
                .iter()
                .map(|p| MapPosition {
                    label: p.label.clone(),
                    lat: p.lat,
                    lon: p.lon,
                    precision_m: p.precision_m,
                    weaker: p.source != PositionSource::Gps,
                })
                .collect(),
            ..MapLayers::default()
        },
        input.tiles,
    );
    let chart = distance_chart_svg(h);
    let pack = HitPack {
        document: "tagstream hit evidence pack",
        layout_version: LAYOUT_VERSION,
        generator: format!("tagstream {}", env!("CARGO_PKG_VERSION")),
        hit: json!({
            "id": h.id,
            "activation": h.activation,
            "certainty": h.certainty,
            "closest_m": h.closest_m,
            "closest_t": format_time(h.closest_t),
            "inside_s": h.inside_s,
            "weaker_evidence": h.weaker_evidence,
            "withdrawn": stored.withdrawn.as_ref().map(|w| json!({
                "change": w.change, "reason": w.reason,
            })),
        }),
        crime: json!({
            "force": h.force,
            "batch_id": h.batch_id,
            "crime_ref": h.crime_ref,
            "version": h.crime_version,
            "crime_type": h.crime_type,
            "crime_type_words": text::crime_type(&h.crime_type),
            "from": format_time(h.crime_from),
            "to": format_time(h.crime_to),
            "from_uk": text::uk_time(h.crime_from),
            "to_uk": text::uk_time(h.crime_to),
            "lat": h.crime_lat,
            "lon": h.crime_lon,
            "bng": text::bng(h.crime_lat, h.crime_lon),
            "radius_m": h.radius_m,
            "other_info": input.other_info,
        }),
        subject: json!({
            "subject_identifier": h.person,
            "name": person.map(|p| p.name.clone()).unwrap_or_default(),
            "nomis_id": opt_text(person.and_then(|p| p.nomis_id.as_ref())),
            "pnc_ref": opt_text(person.and_then(|p| p.pnc_ref.as_ref())),
            "address": opt_text(person.and_then(|p| p.address.as_ref())),
            "date_of_birth": person
                .and_then(|p| p.date_of_birth)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            "offender_manager": opt_text(person.and_then(|p| p.offender_manager.as_ref())),
            "device_id": input.device_id,
            "device_name": format!("{} (activation {})", input.device_id, h.activation),
        }),
        positions: h
            .positions
            .iter()
            .map(|p| {
                json!({
                    "label": p.label,
                    "t": format_time(p.t),
                    "t_uk": text::uk_time(p.t),
                    "lat": p.lat,
                    "lon": p.lon,
                    "bng": text::bng(p.lat, p.lon),
                    "precision_m": p.precision_m,
                    "source": p.source,
                    "speed_kmh": p.speed_kmh,
                    "heading_deg": p.heading_deg,
                    "in_window": p.in_window,
                    "distance_m": p.distance_m,
                })
            })
            .collect(),
        decision: json!({
            "algorithm": h.algorithm,
            "certainty": h.certainty,
            "why": why(stored),
            "weaker_evidence": weaker_words(stored),
        }),
        review: json!({
            "state": stored.review.state,
            "by": stored.review.by,
            "at": stored.review.at.map(format_time),
            "reason": stored.review.reason,
            "changed_after_review": stored.review.changed_after_review,
        }),
        map: json!({ "basemap": map.basemap_note, "zoom": map.zoom }),
        witness_statement: json!({ "declaration": input.declaration }),
    };
    (pack, map.svg, chart)
}

fn field(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) if s.is_empty() => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn review_words(stored: &StoredHit) -> Vec<(String, String)> {
    let r = &stored.review;
    let state = match r.state {
        HitState::Pending => "Pending: the hub has not reviewed this hit",
        HitState::Confirmed => "Confirmed by the hub",
        HitState::Rejected => "Rejected by the hub",
    };
    let mut rows = vec![("Decision".to_string(), state.to_string())];
    if let Some(by) = &r.by {
        rows.push(("By".into(), by.clone()));
    }
    if let Some(at) = r.at {
        rows.push((
            "When".into(),
            format!("{} ({})", text::uk_time(at), text::utc_time(at)),
        ));
    }
    if let Some(reason) = &r.reason {
        rows.push(("Reason".into(), reason.clone()));
    }
    if r.changed_after_review {
        rows.push((
            "Note".into(),
            "The hit was re-evaluated after this decision (late positions): review it again."
                .into(),
        ));
    }
    rows
}

/// Lays the pack out as a document.
fn document(pack: &HitPack, stored: &StoredHit, map_svg: String, chart_svg: String) -> Document {
    let h = &stored.hit;
    let c = &pack.crime;
    let s = &pack.subject;
    let mut blocks = vec![Block::Title(format!(
        "Hit evidence pack: {} {} (version {})",
        h.force, h.crime_ref, h.crime_version
    ))];
    blocks.push(Block::Note(format!(
        "Hit {} · made by {} (pack layout {}) from the data listed in its manifest; the same \
         data gives the same bytes. Times are UK local time with UTC beside them.",
        h.id, pack.generator, LAYOUT_VERSION
    )));
    if let Some(w) = &stored.withdrawn {
        blocks.push(Block::Paragraph(format!(
            "WITHDRAWN: {}. This hit no longer holds; the pack shows it as it stood.",
            w.reason
        )));
    }
    blocks.push(Block::Heading("1. The crime".into()));
    blocks.push(Block::Fields(vec![
        ("Police force".into(), h.force.clone()),
        ("Batch".into(), h.batch_id.clone()),
        ("Crime reference".into(), h.crime_ref.clone()),
        ("Version".into(), h.crime_version.to_string()),
        ("Crime type".into(), field(&c["crime_type_words"])),
        (
            "Window (UK time)".into(),
            format!(
                "{} to {}",
                text::uk_time(h.crime_from),
                text::uk_time(h.crime_to)
            ),
        ),
        (
            "Window (UTC)".into(),
            format!(
                "{} to {}",
                text::utc_time(h.crime_from),
                text::utc_time(h.crime_to)
            ),
        ),
        (
            "Location (WGS84)".into(),
            text::lat_lon(h.crime_lat, h.crime_lon),
        ),
        ("Location (BNG)".into(), field(&c["bng"])),
        ("Vicinity radius".into(), format!("{:.0} m", h.radius_m)),
        ("Other information".into(), field(&c["other_info"])),
    ]));
    blocks.push(Block::Heading("2. The person and the device".into()));
    blocks.push(Block::Fields(vec![
        ("Subject identifier".into(), field(&s["subject_identifier"])),
        ("Name".into(), field(&s["name"])),
        ("NOMIS id".into(), field(&s["nomis_id"])),
        ("PNC reference".into(), field(&s["pnc_ref"])),
        ("Address".into(), field(&s["address"])),
        ("Date of birth".into(), field(&s["date_of_birth"])),
        ("Offender manager".into(), field(&s["offender_manager"])),
        ("Device".into(), field(&s["device_name"])),
    ]));
    blocks.push(Block::Heading("3. How the hit was decided".into()));
    blocks.push(Block::Fields(vec![
        (
            "Certainty".into(),
            match h.certainty {
                Certainty::Certain => "Certain".into(),
                Certainty::Possible => "Possible".into(),
            },
        ),
        ("Why".into(), field(&pack.decision["why"])),
        ("Evidence".into(), field(&pack.decision["weaker_evidence"])),
        ("Algorithm".into(), algorithm_words(&h.algorithm)),
    ]));
    blocks.push(Block::Heading("4. The hub's review".into()));
    blocks.push(Block::Fields(review_words(stored)));
    blocks.push(Block::PageBreak);
    blocks.push(Block::Heading("5. Map of the evidence".into()));
    blocks.push(Block::Figure(Figure {
        svg: map_svg,
        width_share: 1.0,
        caption: format!(
            "Exhibit 1. The crime (red cross) and its {:.0} m vicinity (dashed red circle), the \
             person's positions labelled in time order (A1, A2, …; a new letter after a gap) \
             with their confidence circles, and the straight path between consecutive fixes. \
             Filled dots are GPS fixes, hollow dots cell or Wi-Fi fixes. {}",
            h.radius_m,
            field(&pack.map["basemap"])
        ),
    }));
    blocks.push(Block::Heading(
        "6. Distance from the crime over time".into(),
    ));
    blocks.push(Block::Figure(Figure {
        svg: chart_svg,
        width_share: 1.0,
        caption: "Exhibit 2. Each position's distance from the crime location, with its \
                  precision as a vertical bar; the dashed line is the vicinity radius; the \
                  shaded band is the crime's window."
            .into(),
    }));
    blocks.push(Block::Heading("7. Positions".into()));
    blocks.push(Block::Table(Table {
        columns: vec![
            ("Label".into(), 0.7),
            ("UK time".into(), 1.8),
            ("UTC".into(), 1.3),
            ("WGS84 lat, lon".into(), 1.5),
            ("BNG".into(), 1.25),
            ("Precision".into(), 0.85),
            ("Source".into(), 0.7),
            ("Speed".into(), 0.7),
            ("Heading".into(), 0.8),
            ("Distance".into(), 0.8),
        ],
        rows: h
            .positions
            .iter()
            .map(|p| {
                vec![
                    format!("{}{}", p.label, if p.in_window { "" } else { " *" }),
                    text::uk_time(p.t),
                    text::utc_time(p.t),
                    text::lat_lon(p.lat, p.lon),
                    text::bng(p.lat, p.lon),
                    format!("{:.0} m", p.precision_m),
                    source_words(p.source).into(),
                    p.speed_kmh
                        .map(|v| format!("{v:.0} km/h"))
                        .unwrap_or("—".into()),
                    p.heading_deg
                        .map(|v| format!("{v:.0}°"))
                        .unwrap_or("—".into()),
                    format!("{:.1} m", p.distance_m),
                ]
            })
            .collect(),
    }));
    blocks.push(Block::Note(
        "* outside the crime's window (shown for the path before and after it).".into(),
    ));
    blocks.push(Block::PageBreak);
    blocks.push(Block::Heading("8. Witness statement".into()));
    blocks.push(Block::Paragraph(format!(
        "I produce this evidence pack about hit {} (crime {} {} version {}) as exhibits 1 and 2 \
         and the table of positions above. The positions were recorded by the device {} and \
         processed by tagstream as described in section 3.",
        h.id,
        h.force,
        h.crime_ref,
        h.crime_version,
        field(&s["device_id"])
    )));
    blocks.push(Block::Paragraph(field(
        &pack.witness_statement["declaration"],
    )));
    blocks.push(Block::Signature(vec![
        "Name".into(),
        "Occupation".into(),
        "Signature".into(),
        "Date".into(),
    ]));
    Document {
        title: format!("Hit evidence pack {}", h.id),
        footer: format!("Hit evidence pack {} · {} {}", h.id, h.force, h.crime_ref),
        blocks,
    }
}

/// What the pack was built from, identified so the identification survives log compaction and
/// the cluster log: the activation, tag and event time of each position, the crime's reference
/// and version, and a digest of each input as the pack read it.
fn inputs(input: &HitPackInput, pack: &HitPack) -> Result<Value, DocumentError> {
    let h = &input.stored.hit;
    Ok(json!({
        "hit": { "id": h.id, "sha256": sha256_hex(&serde_json::to_vec(h)?) },
        "crime": {
            "force": h.force, "batch_id": h.batch_id, "crime_ref": h.crime_ref,
            "version": h.crime_version,
            "sha256": sha256_hex(&serde_json::to_vec(&pack.crime)?),
        },
        "positions": h.positions.iter().enumerate().map(|(i, p)| {
            let mut named = json!({
                "activation": h.activation, "tag": input.device_id, "t": format_time(p.t),
            });
            if let Some(batch) = input.position_batches.get(i).copied().flatten() {
                named["batch"] = json!(batch);
            }
            named
        }).collect::<Vec<_>>(),
        "subject": { "person": h.person, "sha256": sha256_hex(&serde_json::to_vec(&pack.subject)?) },
        "review": { "sha256": sha256_hex(&serde_json::to_vec(&pack.review)?) },
        "basemap": pack.map["basemap"],
    }))
}

/// Builds the pack's PDF, JSON and manifest.
pub fn hit_pack(input: &HitPackInput) -> Result<HitPackFiles, DocumentError> {
    let (pack, map_svg, chart_svg) = build(input);
    let pdf = render(&document(&pack, input.stored, map_svg, chart_svg))?;
    let mut json = serde_json::to_vec_pretty(&pack)?;
    json.push(b'\n');
    let id = &input.stored.hit.id;
    let manifest = Manifest {
        manifest_version: 1,
        document: "hit_pack".into(),
        generator: pack.generator.clone(),
        layout_version: LAYOUT_VERSION,
        subject: json!({
            "hit": id,
            "force": input.stored.hit.force,
            "crime_ref": input.stored.hit.crime_ref,
            "crime_version": input.stored.hit.crime_version,
        }),
        files: vec![
            ManifestFile::of(format!("{id}-pack.pdf"), &pdf),
            ManifestFile::of(format!("{id}-pack.json"), &json),
        ],
        inputs: inputs(input, &pack)?,
    };
    Ok(HitPackFiles {
        pdf,
        json,
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crime::test_fixtures::sample_hit;
    use crate::store::crime_store::HitReview;

    fn stored() -> StoredHit {
        StoredHit {
            hit: sample_hit(),
            review: HitReview {
                state: HitState::Confirmed,
                by: Some("hub1".into()),
                at: Some(1_780_010_000_000),
                reason: Some("Route matches CCTV".into()),
                changed_after_review: false,
            },
            withdrawn: None,
        }
    }

    fn person() -> Person {
        Person {
            id: "P1".into(),
            name: "Alex Example".into(),
            date_of_birth: None,
            nomis_id: Some("A1234BC".into()),
            pnc_ref: None,
            address: Some("1 Test Street, Bristol".into()),
            offender_manager: Some("J Smith".into()),
            restricted: false,
        }
    }

    #[test]
    fn the_pack_is_the_same_bytes_twice_and_its_manifest_names_both_files() {
        let stored = stored();
        let person = person();
        let batches = [Some(BatchSeq { epoch: 2, seq: 41 })];
        let input = HitPackInput {
            stored: &stored,
            other_info: "Side door forced",
            device_id: "T1",
            person: Some(&person),
            position_batches: &batches,
            declaration: DEFAULT_DECLARATION,
            tiles: None,
        };
        let a = hit_pack(&input).expect("builds");
        let b = hit_pack(&input).expect("builds");
        assert_eq!(a.pdf, b.pdf);
        assert_eq!(a.json, b.json);
        assert_eq!(a.manifest, b.manifest);
        assert_eq!(a.manifest.files[0].sha256, sha256_hex(&a.pdf));
        assert_eq!(a.manifest.files[1].sha256, sha256_hex(&a.json));
        // Each position named by activation, tag, batch and event time; a position whose
        // batch the store does not know is named without it.
        let named = &a.manifest.inputs["positions"];
        assert_eq!(named[0]["batch"], json!({"epoch": 2, "seq": 41}));
        assert_eq!(named[0]["tag"], "T1");
        assert!(named[1].get("batch").is_none(), "{named}");
        let json: Value = serde_json::from_slice(&a.json).unwrap();
        assert_eq!(json["subject"]["name"], "Alex Example");
        assert_eq!(
            json["positions"].as_array().unwrap().len(),
            stored.hit.positions.len()
        );
        assert_eq!(
            a.manifest.inputs["positions"].as_array().unwrap().len(),
            stored.hit.positions.len()
        );
        // A change to the review is a different pack.
        let mut rejected = stored.clone();
        rejected.review.reason = Some("Different route".into());
        let c = hit_pack(&HitPackInput {
            stored: &rejected,
            ..input
        })
        .expect("builds");
        assert_ne!(c.pdf, a.pdf);
        assert_ne!(c.manifest.inputs["review"], a.manifest.inputs["review"]);
    }

    #[test]
    fn the_subject_holds_only_the_csv_fields() {
        let stored = stored();
        let person = Person {
            restricted: true,
            ..person()
        };
        let (pack, _, _) = build(&HitPackInput {
            stored: &stored,
            other_info: "",
            device_id: "T1",
            person: Some(&person),
            position_batches: &[],
            declaration: DEFAULT_DECLARATION,
            tiles: None,
        });
        let keys: Vec<&String> = pack.subject.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "address",
                "date_of_birth",
                "device_id",
                "device_name",
                "name",
                "nomis_id",
                "offender_manager",
                "pnc_ref",
                "subject_identifier"
            ]
        );
    }
}
