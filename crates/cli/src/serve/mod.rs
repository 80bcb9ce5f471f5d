//! `convnet serve RUN`: the CNN explorer, a local web app served from the
//! binary (page, script and style are compiled in: no CDN, works offline).
//!
//! It draws the model's graph with shapes, parameter counts and output-size
//! formulas; predicts a drawn or uploaded image and shows every layer's
//! feature maps; shows a map's filter, the input patch one of its pixels
//! looks at, and for pooling the maps before and after; and the run's
//! curves, confusion matrix and mistakes. `convnet train --serve` serves the
//! same page while training, with curves updated per batch.
//!
//! HTTP is a small std-only server (`http.rs`): a thread per connection,
//! one request each; the model is shared behind a mutex. Hardening:
//! loopback unless `--host` says otherwise; request bodies limited to
//! [`MAX_BODY`]; every bad request a 4xx with a message; only the run
//! folder's own picture files are ever read, by name from a fixed list; a
//! handler that panics answers 500 and the server goes on.

mod api;
mod arithmetic;
mod geometry;
mod http;

use crate::error::{CliError, CliResult};
use clap::Args;
use convnet_nn::{Model, Precision};
use convnet_run::folder::RunConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use api::{Live, LiveCallback};

/// The largest request body accepted (an uploaded photo): 10 MiB.
pub const MAX_BODY: usize = 10 << 20;

/// Options of `convnet serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// A run folder written by `convnet train` (or `convnet import`).
    run: PathBuf,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on; the default serves this machine only.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// fp32, or bf16 (mixed_bfloat16): predictions with bf16 convolution operands and fp32
    /// sums, on AVX512-BF16 (elsewhere a notice and fp32).
    #[arg(long, default_value = "fp32")]
    precision: String,
}

/// The page's files, compiled into the binary.
const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const MAPS_JS: &str = include_str!("page/maps.js");
const ARITHMETIC_JS: &str = include_str!("page/arithmetic.js");
const GRAPH_JS: &str = include_str!("page/graph.js");
/// The tab's icon (browsers ask for `/favicon.ico` on every load): a 3x3
/// grid of filter weights.
const FAVICON_SVG: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 3 3\">\
<rect width=\"3\" height=\"3\" fill=\"#1e88e5\"/><rect x=\"1\" y=\"0\" width=\"1\" height=\"1\" fill=\"#fff\"/>\
<rect x=\"0\" y=\"1\" width=\"1\" height=\"1\" fill=\"#fff\"/><rect x=\"2\" y=\"1\" width=\"1\" height=\"1\" fill=\"#fff\"/>\
<rect x=\"1\" y=\"2\" width=\"1\" height=\"1\" fill=\"#fff\"/></svg>";
const APP_CSS: &str = include_str!("page/app.css");

/// What the handlers share.
pub struct Explorer {
    run: PathBuf,
    cfg: RunConfig,
    model: Mutex<Option<Model>>,
    /// The newest checkpoint the model was loaded from (live training).
    loaded_from: Mutex<Option<String>>,
    live: Option<Arc<Live>>,
    evaluation: Mutex<Option<Arc<api::Evaluation>>>,
    /// The arithmetic of its predictions.
    precision: Precision,
}

impl Explorer {
    /// The explorer of a finished run (of a training one with `live`),
    /// predicting in `precision`.
    pub fn open(run: &Path, live: Option<Arc<Live>>, precision: Precision) -> CliResult<Explorer> {
        let (cfg, model) = if live.is_some() {
            // The model is loaded from the newest checkpoint when one exists.
            (RunConfig::load(run)?, None)
        } else {
            let (cfg, model) = convnet_run::open(run)?;
            (cfg, Some(model))
        };
        Ok(Explorer {
            run: run.to_path_buf(),
            cfg,
            model: Mutex::new(model),
            loaded_from: Mutex::new(None),
            live,
            evaluation: Mutex::new(None),
            precision,
        })
    }
}

/// Starts listening; returns the listener and the address it listens on.
/// Warns when the address is not this machine's loopback.
pub fn bind(host: &str, port: u16) -> CliResult<(std::net::TcpListener, String)> {
    let listener = std::net::TcpListener::bind((host, port))
        .map_err(|e| CliError::usage(format!("cannot listen on {host}:{port}: {e}")))?;
    if listener.local_addr().is_ok_and(|a| !a.ip().is_loopback()) {
        eprintln!(
            "warning: --host {host} is not this machine's loopback: anyone who can reach it \
             sees the model, its weights and the run's test images"
        );
    }
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| format!("{host}:{port}"));
    Ok((listener, addr))
}

/// Answers requests until the process ends. A handler that panics gets
/// a 500 and the server goes on.
pub fn run_server(listener: std::net::TcpListener, explorer: Arc<Explorer>) {
    let log = std::env::var_os("CONVNET_SERVE_LOG").is_some();
    // On loopback, a page from elsewhere that a DNS record points at
    // 127.0.0.1 (DNS rebinding) sends its own name as Host: refused.
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    let handler = move |r: &http::Request| {
        let reply = match &r.host {
            Some(h) if loopback && !is_loopback_host(h) => Reply::error(
                403,
                format!("Host '{h}' is not this machine: open the explorer at http://127.0.0.1 or http://localhost"),
            ),
            _ => respond(&explorer, r),
        };
        if log {
            eprintln!("{} {} {}", r.method, r.url, reply.status);
        }
        http::Response {
            status: reply.status,
            content_type: reply.content_type,
            body: reply.body,
        }
    };
    http::serve(listener, Arc::new(handler));
}

/// Whether a `Host` header names the loopback (`localhost`, `127.x.x.x`,
/// `[::1]`), with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `convnet serve`.
pub fn serve(a: ServeArgs) -> CliResult<()> {
    let precision = crate::precision(&a.precision)?;
    let explorer = Arc::new(Explorer::open(&a.run, None, precision)?);
    let (server, addr) = bind(&a.host, a.port)?;
    println!(
        "Serving the explorer of {} at http://{addr}/ (Ctrl-C stops)",
        a.run.display()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    run_server(server, explorer);
    Ok(())
}

/// A response: status, content type and body.
pub struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            content_type,
            body: body.into(),
        }
    }
    fn json(v: &serde_json::Value) -> Reply {
        Reply::ok("application/json", v.to_string())
    }
    /// An error with a JSON message `{"error": ...}`.
    fn error(status: u16, msg: impl Into<String>) -> Reply {
        let v = serde_json::json!({ "error": msg.into() });
        Reply {
            status,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
        }
    }
}

/// `?a=1&b=2` -> the raw value of `key`, if given.
fn query_value<'u>(url: &'u str, key: &str) -> Option<&'u str> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `?a=1&b=2` -> the value of `key`, as a number, if given.
fn query_opt_usize(url: &str, key: &str) -> Result<Option<usize>, Reply> {
    query_value(url, key)
        .map(|raw| {
            raw.parse().map_err(|_| {
                Reply::error(
                    400,
                    format!("query parameter '{key}': expected a number, found '{raw}'"),
                )
            })
        })
        .transpose()
}

/// `?a=1&b=2` -> the value of `key`, as a number.
fn query_usize(url: &str, key: &str) -> Result<usize, Reply> {
    query_opt_usize(url, key)?
        .ok_or_else(|| Reply::error(400, format!("missing query parameter '{key}'")))
}

/// `?prepare=0` -> false; absent -> true; 1 -> true; anything else a 400.
fn query_flag(url: &str, key: &str) -> Result<bool, Reply> {
    match query_value(url, key) {
        None | Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(raw) => Err(Reply::error(
            400,
            format!("query parameter '{key}': expected 0 or 1, found '{raw}'"),
        )),
    }
}

/// The run folder's pictures the page may show (nothing else is read).
const RUN_PICTURES: [&str; 4] = [
    "loss.png",
    "accuracy.png",
    "confusion_matrix.png",
    "mistakes.png",
];

fn respond(ex: &Explorer, request: &http::Request) -> Reply {
    let url = request.url.as_str();
    let path = url.split('?').next().unwrap_or("");
    let method = request.method.as_str();
    let result = match (method, path) {
        ("GET", "/") | ("GET", "/index.html") => {
            Ok(Reply::ok("text/html; charset=utf-8", INDEX_HTML))
        }
        ("GET", "/app.js") => Ok(Reply::ok("text/javascript; charset=utf-8", APP_JS)),
        ("GET", "/maps.js") => Ok(Reply::ok("text/javascript; charset=utf-8", MAPS_JS)),
        ("GET", "/arithmetic.js") => Ok(Reply::ok("text/javascript; charset=utf-8", ARITHMETIC_JS)),
        ("GET", "/graph.js") => Ok(Reply::ok("text/javascript; charset=utf-8", GRAPH_JS)),
        ("GET", "/app.css") => Ok(Reply::ok("text/css; charset=utf-8", APP_CSS)),
        ("GET", "/favicon.ico" | "/favicon.svg") => Ok(Reply::ok("image/svg+xml", FAVICON_SVG)),
        ("GET", "/api/model") => api::model_json(ex).map(|v| Reply::json(&v)),
        ("POST", "/api/predict") => {
            match (query_flag(url, "prepare"), query_opt_usize(url, "class")) {
                (Ok(prepare), Ok(class)) => {
                    api::predict(ex, &request.body, prepare, class).map(|v| Reply::json(&v))
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        ("GET", "/api/filter") => {
            let (layer, map) = match (query_usize(url, "layer"), query_usize(url, "map")) {
                (Ok(l), Ok(m)) => (l, m),
                (Err(e), _) | (_, Err(e)) => return e,
            };
            api::filter(ex, layer, map).map(|v| Reply::json(&v))
        }
        ("GET", "/api/patch") => {
            let q = ["layer", "y", "x"].map(|k| query_usize(url, k));
            match q {
                [Ok(l), Ok(y), Ok(x)] => api::patch(ex, l, y, x).map(|v| Reply::json(&v)),
                [Err(e), ..] | [_, Err(e), _] | [.., Err(e)] => Err(e),
            }
        }
        ("POST", "/api/arithmetic") => {
            let q = ["layer", "map", "y", "x"].map(|k| query_usize(url, k));
            match (q, query_flag(url, "prepare")) {
                ([Ok(node), Ok(map), Ok(y), Ok(x)], Ok(prepare)) => {
                    let unit = arithmetic::Unit { node, map, y, x };
                    api::arithmetic(ex, &request.body, prepare, unit).map(|v| Reply::json(&v))
                }
                ([Err(e), ..] | [_, Err(e), ..] | [_, _, Err(e), _] | [.., Err(e)], _)
                | (_, Err(e)) => Err(e),
            }
        }
        ("GET", "/api/history") => Ok(Reply::json(&api::history(ex))),
        ("POST", "/api/lr") => {
            api::set_lr(ex, query_value(url, "value").unwrap_or("")).map(|v| Reply::json(&v))
        }
        ("POST", "/api/pause") => match query_value(url, "on") {
            Some("1") => api::pause(ex, true).map(|v| Reply::json(&v)),
            Some("0") => api::pause(ex, false).map(|v| Reply::json(&v)),
            other => Err(Reply::error(
                400,
                format!("query parameter 'on': expected 0 or 1, found {other:?}"),
            )),
        },
        ("GET", "/api/evaluation") => api::evaluation_json(ex).map(|v| Reply::json(&v)),
        ("GET", "/api/sample") => match query_usize(url, "index") {
            Ok(i) => api::sample_png(ex, i).map(|png| Reply::ok("image/png", png)),
            Err(e) => Err(e),
        },
        ("GET", p) if p.starts_with("/run/") => {
            let name = &p["/run/".len()..];
            match RUN_PICTURES.iter().find(|&&n| n == name) {
                Some(n) => std::fs::read(ex.run.join(n))
                    .map(|b| Reply::ok("image/png", b))
                    .map_err(|_| Reply::error(404, format!("{n}: not written for this run yet"))),
                None => Err(Reply::error(404, format!("no such picture '{name}'"))),
            }
        }
        (_, "/" | "/index.html" | "/app.js" | "/maps.js" | "/arithmetic.js" | "/graph.js")
        | (_, "/app.css" | "/api/model")
        | (_, "/api/history" | "/api/pause" | "/api/lr")
        | (_, "/api/filter" | "/api/patch" | "/api/evaluation" | "/api/sample")
        | (_, "/api/predict" | "/api/arithmetic") => Err(Reply::error(
            405,
            format!("{method} is not allowed on {path}"),
        )),
        _ => Err(Reply::error(404, format!("no such page '{path}'"))),
    };
    result.unwrap_or_else(|e| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_pass_the_host_check() {
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:80",
            "127.1.2.3",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "10.0.0.1",
            "[::2]:80",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn query_parameters_are_numbers_or_a_400() {
        assert_eq!(query_usize("/api/patch?layer=2&y=5", "y").ok(), Some(5));
        let e = query_usize("/api/patch?layer=x", "layer").err().unwrap();
        assert_eq!(e.status, 400);
        assert!(String::from_utf8(e.body)
            .unwrap()
            .contains("expected a number"));
        assert_eq!(
            query_usize("/api/patch", "layer").err().unwrap().status,
            400
        );
        assert_eq!(query_flag("/api/predict", "prepare").ok(), Some(true));
        assert_eq!(
            query_flag("/api/predict?prepare=0", "prepare").ok(),
            Some(false)
        );
        assert_eq!(
            query_flag("/api/predict?prepare=yes", "prepare")
                .err()
                .unwrap()
                .status,
            400
        );
    }
}
