//! Third-party device protocols: the bytes a commodity tracker sends, decoded into the project's
//! own readings (`crate::model::Reading`). Pure libraries, no networking: the listeners that
//! speak these protocols on a socket, and the registry that binds a device to a tag, live
//! elsewhere. `docs/devices.md` says what each protocol decodes and how it is mapped.

pub mod osmand;
pub mod teltonika;
