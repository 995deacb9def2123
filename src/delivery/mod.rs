//! Live delivery of alert changes beyond the API's event stream: webhooks.

pub mod webhooks;
