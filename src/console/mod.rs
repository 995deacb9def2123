//! The web console's static files, served by `tagstream serve` beside the API.
//!
//! `/` is the console's `index.html`; `/console/*` are its assets from the console directory
//! (`web/` by default: the HTML, CSS, ES modules and the offline basemap); `/console/vendor/leaflet/*`
//! is Leaflet's `dist/` from `web/node_modules` (installed by `npm ci` in the project scripts); and
//! `/console/config.json` tells the page the deployment's settings (tile URL or none);
//! `/console/tiles/{z}/{x}/{y}.png` are map tiles from a local archive when one is configured
//! (`tiles`). Nothing here is person data and nothing needs a token: the page signs in to the API
//! with a bearer token.
//! Every page carries a Content-Security-Policy that allows only this origin (and the configured
//! tile server's), so the console loads nothing else from the internet.

use crate::config::ConsoleConfig;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::path::{Component, PathBuf};
use std::sync::Arc;

pub mod tiles;

use tiles::{TileArchive, TileArchiveError};

/// The directory to serve, if one with an `index.html` can be found: the configured one, else
/// `web/` in the current directory, else beside the binary's repository.
fn resolve_dir(config: &ConsoleConfig) -> Option<PathBuf> {
    if let Some(dir) = &config.dir {
        return Some(dir.clone());
    }
    let here = std::env::current_dir().ok().map(|d| d.join("web"));
    let beside_binary = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .skip(1)
            .map(|d| d.join("web"))
            .find(|d| d.join("index.html").is_file())
    });
    here.filter(|d| d.join("index.html").is_file())
        .or(beside_binary)
}

struct Console {
    dir: PathBuf,
    config: ConsoleConfig,
    csp: HeaderValue,
    tiles: TileSource,
}

/// Where the map's tiles come from.
enum TileSource {
    /// The configured remote `tile_url`, or none (the offline force-areas basemap).
    Remote,
    Archive(Arc<TileArchive>),
    /// The archive failed to open here although `tagstream serve` checked it at start (e.g. it
    /// was removed since): tiles answer 503 with why, and the page falls back to force areas.
    Broken(String),
}

/// The console's routes, or `None` (with a warning) when no console directory is found.
pub fn router<S: Clone + Send + Sync + 'static>(config: &ConsoleConfig) -> Option<Router<S>> {
    let Some(dir) = resolve_dir(config) else {
        tracing::warn!("no console directory (web/index.html) found; the web console is off");
        return None;
    };
    tracing::info!(dir = %dir.display(), "serving the web console at /");
    let tiles = match tiles::open_configured(config) {
        Ok(None) => TileSource::Remote,
        Ok(Some(archive)) => {
            tracing::info!(archive = %archive.path().display(), synthetic = archive.info().synthetic,
                "serving map tiles from a local archive at /console/tiles/");
            TileSource::Archive(Arc::new(archive))
        }
        Err(e) => {
            tracing::error!(error = %e, "the map tile archive is unusable; tiles answer 503");
            TileSource::Broken(e.to_string())
        }
    };
    let console = Arc::new(Console {
        csp: content_security_policy(config.tile_url.as_deref()),
        dir,
        config: config.clone(),
        tiles,
    });
    Some(
        Router::new()
            .route("/", get(index))
            .route("/console/config.json", get(settings))
            .route("/console/tiles/{z}/{x}/{y}", get(tile))
            .route("/console/vendor/leaflet/{*path}", get(leaflet))
            .route("/console/{*path}", get(asset))
            .with_state(console)
            // Text is sent gzip- or brotli-compressed to a browser that accepts it (Leaflet's
            // source shrinks about fourfold); PNG tiles are sent as they are.
            .layer(tower_http::compression::CompressionLayer::new()),
    )
}

/// Only this origin, plus the tile server's origin for images when tiles are configured.
fn content_security_policy(tile_url: Option<&str>) -> HeaderValue {
    let mut img = vec!["'self'".to_string(), "data:".into(), "blob:".into()];
    img.extend(tile_url.and_then(origin_of));
    let policy = format!(
        "default-src 'self'; img-src {}; style-src 'self' 'unsafe-inline'; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        img.join(" ")
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'self'"))
}

/// `https://a.tiles.example:8080/{z}/…` → `https://a.tiles.example:8080`.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    let host = host.replace("{s}", "*");
    let ok = |c: char| c.is_ascii_alphanumeric() || ".-:*[]".contains(c);
    (!host.is_empty() && host.chars().all(ok)).then(|| format!("{scheme}://{host}"))
}

async fn index(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    file(&console, console.dir.join("index.html"), &headers).await
}

async fn settings(State(console): State<Arc<Console>>) -> Response {
    let config = &console.config;
    let body = match &console.tiles {
        TileSource::Archive(archive) => {
            let info = archive.info();
            serde_json::json!({
                "tile_url": tiles::TILE_URL,
                "tile_attribution": config.tile_attribution.clone().or(info.attribution.clone()),
                "tile_min_native_zoom": info.min_zoom,
                "tile_max_native_zoom": info.max_zoom,
                "tile_bounds": info.bounds,
                "tile_synthetic": info.synthetic,
                "basemap": "/console/basemap/force-areas.geojson",
            })
        }
        TileSource::Remote | TileSource::Broken(_) => serde_json::json!({
            "tile_url": config.tile_url,
            "tile_attribution": config.tile_attribution,
            "tile_synthetic": false,
            "basemap": "/console/basemap/force-areas.geojson",
        }),
    };
    Json(body).into_response()
}

/// A tile from the local archive: 400 for a malformed or out-of-grid address, 404 when the
/// archive has no such tile.
async fn tile(
    State(console): State<Arc<Console>>,
    Path((z, x, y)): Path<(String, String, String)>,
) -> Response {
    let archive = match &console.tiles {
        TileSource::Archive(a) => a.clone(),
        TileSource::Broken(why) => {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
        }
        TileSource::Remote => return not_found(),
    };
    let Some((z, x, y)) = tiles::parse_tile_path(&z, &x, &y) else {
        return (
            StatusCode::BAD_REQUEST,
            "a tile is /console/tiles/{z}/{x}/{y}.png, decimal numbers inside the zoom's grid\n",
        )
            .into_response();
    };
    // SQLite reads can wait on the disk: off the async workers.
    let found = tokio::task::spawn_blocking(move || archive.tile(z, x, y)).await;
    match found {
        Ok(Ok(Some(png))) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "public, max-age=86400"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            png,
        )
            .into_response(),
        Ok(Ok(None)) => not_found(),
        Ok(Err(e)) => tile_error(e),
        Err(join) => {
            tracing::error!(error = %join, "a tile read task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "tile read failed\n").into_response()
        }
    }
}

fn tile_error(e: TileArchiveError) -> Response {
    tracing::error!(error = %e, "reading a map tile");
    (StatusCode::INTERNAL_SERVER_ERROR, "tile read failed\n").into_response()
}

async fn leaflet(
    State(console): State<Arc<Console>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let base = console.dir.join("node_modules/leaflet/dist");
    match safe_join(base, &path) {
        Some(p) => file(&console, p, &headers).await,
        None => not_found(),
    }
}

async fn asset(
    State(console): State<Arc<Console>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    // The console's own files only: never its package tooling or installed packages.
    let first = path.split('/').next().unwrap_or_default();
    if first == "node_modules" || first.starts_with('.') || first.starts_with("package") {
        return not_found();
    }
    match safe_join(console.dir.clone(), &path) {
        Some(p) => file(&console, p, &headers).await,
        None => not_found(),
    }
}

/// `base/path` when `path` is plain relative components (no `..`, no root, no hidden files).
fn safe_join(base: PathBuf, path: &str) -> Option<PathBuf> {
    let rel = std::path::Path::new(path);
    let plain = rel.components().all(|c| match c {
        Component::Normal(s) => !s.to_string_lossy().starts_with('.'),
        _ => false,
    });
    (plain && !path.is_empty()).then(|| base.join(rel))
}

fn content_type(path: &std::path::Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "geojson" => "application/geo+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// A file's validator: its length and modification time (a new deployment changes one).
fn entity_tag(meta: &std::fs::Metadata) -> Option<HeaderValue> {
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    HeaderValue::from_str(&format!("\"{:x}-{:x}\"", meta.len(), modified.as_nanos())).ok()
}

/// A static file, revalidated on each use (`no-cache` with an ETag): a browser that has it gets
/// `304 Not Modified` and no body, and a new deployment is seen at once.
async fn file(console: &Console, path: PathBuf, request: &HeaderMap) -> Response {
    let Ok(meta) = tokio::fs::metadata(&path).await else {
        return not_found();
    };
    let tag = entity_tag(&meta);
    let fresh = tag.as_ref().is_some_and(|tag| {
        request.get_all(header::IF_NONE_MATCH).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim() == tag))
        })
    });
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match tokio::fs::read(&path).await {
            Ok(bytes) => ([(header::CONTENT_TYPE, content_type(&path))], bytes).into_response(),
            Err(_) => return not_found(),
        }
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, console.csp.clone());
    if let Some(tag) = tag {
        h.insert(header::ETAG, tag);
    }
    resp
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_served() {
        let base = PathBuf::from("/srv/web");
        assert_eq!(
            safe_join(base.clone(), "js/app.js"),
            Some(PathBuf::from("/srv/web/js/app.js"))
        );
        for bad in ["../secret", "js/../../x", "/etc/passwd", ".git/config", ""] {
            assert_eq!(safe_join(base.clone(), bad), None, "{bad}");
        }
    }

    #[test]
    fn the_policy_names_the_tile_origin_only() {
        assert_eq!(
            origin_of("https://{s}.tiles.example:8080/{z}/{x}/{y}.png").as_deref(),
            Some("https://*.tiles.example:8080")
        );
        assert_eq!(origin_of("not a url"), None);
        let csp = content_security_policy(None);
        assert!(csp
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'; img-src 'self' data: blob:;"));
    }
}
