//! `convnet serve` and `convnet train --serve` over real HTTP: every
//! endpoint, malformed and oversized requests, paths outside the run.

mod common;
use common::{convnet, make_folder, peak_mib, png_bomb, text, tmp, TinyRun};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `convnet` process that serves; killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `convnet ARGS` and waits for the line with the address.
fn start(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run convnet");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        if let Some(i) = line.find("http://") {
            let rest = &line[i + 7..];
            break rest[..rest.find('/').unwrap()].to_string();
        }
    };
    // Keep draining stdout so that the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

/// One raw HTTP exchange: `(status, body)`.
fn raw(addr: &str, request: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    // The server may answer (413, 411) and stop reading before all is sent.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(buf.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, buf[head_end..].to_vec())
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let (s, b) = raw(addr, req.as_bytes());
    (s, String::from_utf8_lossy(&b).to_string())
}

fn post(addr: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let (s, b) = raw(addr, &req);
    (s, String::from_utf8_lossy(&b).to_string())
}

/// A value the explorer sends as base64 of little-endian f32.
fn f32s(v: &serde_json::Value) -> Vec<f32> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A 28x28 PNG with a white vertical stroke (a "1").
fn stroke_png() -> Vec<u8> {
    let img = image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([if (12..=15).contains(&x) && (4..=23).contains(&y) {
            255
        } else {
            0
        }])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn train_small(out: &Path) -> String {
    let o = TinyRun::new(out, "small")
        .with("--model", "4C3-P2-10")
        .without("--batch-size")
        .without("--seed")
        .run();
    assert!(o.status.success(), "{}", text(&o));
    out.join("small").to_str().unwrap().to_string()
}

#[test]
fn every_endpoint_answers_and_bad_requests_get_a_4xx() {
    let d = tmp("serve");
    let run = train_small(&d);
    let srv = start(&["serve", &run, "--port", "0"]);
    let a = srv.addr.as_str();
    assert!(a.starts_with("127.0.0.1:"), "loopback by default: {a}");

    // The page and its files, from the binary.
    let (s, page) = get(a, "/");
    assert_eq!(s, 200);
    assert!(
        page.contains("<canvas id=\"draw\"") && page.contains("/app.js"),
        "{page}"
    );
    assert_eq!(get(a, "/app.js").0, 200);
    assert_eq!(get(a, "/app.css").0, 200);
    // The icon browsers ask for on every load (it was a 404).
    for icon in ["/favicon.ico", "/favicon.svg"] {
        let (s, body) = get(a, icon);
        assert_eq!(s, 200, "{icon}");
        assert!(body.starts_with("<svg"), "{icon}: {body}");
    }

    // The model: layers with shapes, parameters, formulas; class names.
    let (s, body) = get(a, "/api/model");
    assert_eq!(s, 200);
    let m = json(&body);
    assert_eq!(m["input_shape"], serde_json::json!([28, 28, 1]));
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers[0]["kind"], "Conv2D");
    // The page asks the role, not the kind's name (filters and pooling details).
    let roles: Vec<&str> = layers.iter().map(|l| l["role"].as_str().unwrap()).collect();
    assert_eq!(roles[..2], ["filters", "pooling"], "{roles:?}");
    assert_eq!(layers[0]["params"], 40);
    assert!(layers[0]["formula"].as_str().unwrap().contains("28"));
    assert_eq!(m["classes"].as_array().unwrap().len(), 10);

    // A prediction: probabilities and every layer's maps, not blank.
    let (s, body) = post(a, "/api/predict", &stroke_png());
    assert_eq!(s, 200, "{body}");
    let p = json(&body);
    let probs = p["probabilities"].as_array().unwrap();
    let sum: f64 = probs.iter().map(|v| v["p"].as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-4 && probs.len() == 10, "{sum}");
    let first = &p["layers"][0];
    assert_eq!(first["shape"], serde_json::json!([28, 28, 4]));
    assert!(first["max"].as_f64().unwrap() > first["min"].as_f64().unwrap());
    assert_eq!(p["layers"].as_array().unwrap().len(), layers.len());

    // Bad images and bodies.
    let (s, body) = post(a, "/api/predict", b"not an image");
    assert!(
        s == 400 && body.contains("not a readable image"),
        "{s} {body}"
    );
    let (s, body) = post(a, "/api/predict", b"");
    assert!(s == 400 && body.contains("empty body"), "{s} {body}");
    let big = format!(
        "POST /api/predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        11 << 20
    );
    let (s, body) = raw(a, big.as_bytes());
    assert_eq!(s, 413, "{}", String::from_utf8_lossy(&body));
    let mut chunked = b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let piece = vec![0u8; 1 << 20];
    for _ in 0..11 {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(&piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw(a, &chunked).0, 411, "chunked bodies are refused");

    // Filters, receptive fields and their errors.
    let (s, body) = get(a, "/api/filter?layer=0&map=3");
    assert_eq!(s, 200, "{body}");
    assert_eq!(json(&body)["shape"], serde_json::json!([3, 3, 1]));
    assert_eq!(
        get(a, "/api/filter?layer=1&map=0").0,
        404,
        "pooling has no filter"
    );
    assert_eq!(get(a, "/api/filter?layer=0&map=4").0, 404);
    assert_eq!(get(a, "/api/filter?layer=0&map=x").0, 400);
    assert_eq!(get(a, "/api/filter?layer=0").0, 400);
    let (s, body) = get(a, "/api/patch?layer=1&y=2&x=3");
    assert_eq!(s, 200);
    let w = json(&body);
    assert_eq!(
        (w["top"].as_u64(), w["bottom"].as_u64()),
        (Some(3), Some(6))
    );
    // ... and in every earlier layer: pool pixel (2, 3) sees conv rows 4-5.
    assert_eq!(
        w["layers"],
        serde_json::json!([{"index": 0, "top": 4, "bottom": 5, "left": 6, "right": 7}])
    );
    assert_eq!(get(a, "/api/patch?layer=1&y=99&x=0").0, 404);

    // Nothing to pause in a finished run, no rate to set.
    assert_eq!(post(a, "/api/pause?on=1", b"").0, 404);
    assert_eq!(post(a, "/api/lr?value=0.1", b"").0, 404);

    // Curves, evaluation, mistakes.
    let (s, body) = get(a, "/api/history");
    assert_eq!(s, 200);
    assert_eq!(json(&body)["epochs"].as_array().unwrap().len(), 1);
    let (s, body) = get(a, "/api/evaluation");
    assert_eq!(s, 200, "{body}");
    let e = json(&body);
    assert_eq!(e["samples"], 10000);
    let cm = e["confusion"].as_array().unwrap();
    let total: u64 = cm
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 10000);
    let (s, png) = raw(
        a,
        b"GET /api/sample?index=0 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(s == 200 && png.starts_with(b"\x89PNG"), "{s}");
    assert_eq!(get(a, "/api/sample?index=10000").0, 404);

    // Only the run's own pictures, by name; nothing outside the run.
    let (s, png) = raw(
        a,
        b"GET /run/loss.png HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(s == 200 && png.starts_with(b"\x89PNG"), "{s}");
    for path in [
        "/run/../run.json",
        "/run/%2e%2e/run.json",
        "/run/run.json",
        "/../../etc/passwd",
        "/run//etc/passwd",
    ] {
        let (s, body) = get(a, path);
        assert_eq!(s, 404, "{path}: {body}");
        assert!(!body.contains("root:"), "{path}");
    }

    // Wrong methods, unknown pages, garbage.
    assert_eq!(
        raw(
            a,
            b"DELETE /api/model HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .0,
        405
    );
    assert_eq!(get(a, "/api/predict").0, 405);
    assert_eq!(get(a, "/nope").0, 404);
    let (s, body) = raw(a, b"GARBAGE\r\n\r\n");
    assert_eq!(s, 400, "a malformed request line");
    assert!(String::from_utf8_lossy(&body).contains("malformed request line"));
    let mut huge = b"GET / HTTP/1.1\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b"X-Pad: aaaaaaaaaaaaaaaa\r\n".as_slice(), 1000).flatten());
    huge.extend_from_slice(b"\r\n");
    assert_eq!(raw(a, &huge).0, 431, "a request head over 16 KiB");
    // ... and the server is still there.
    assert_eq!(get(a, "/api/model").0, 200);
    drop(srv);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn predictions_say_why_and_show_their_arithmetic() {
    let d = tmp("serve-why");
    let run = train_small(&d);
    let srv = start(&["serve", &run, "--port", "0"]);
    let a = srv.addr.as_str();
    let layers = json(&get(a, "/api/model").1)["layers"]
        .as_array()
        .unwrap()
        .clone();
    let (s, body) = post(a, "/api/predict", &stroke_png());
    assert_eq!(s, 200, "{body}");
    let p = json(&body);
    let probs = p["probabilities"].as_array().unwrap();

    // Why: Grad-CAM on the last convolution and gradient x input, of the
    // predicted class or of the class asked for.
    let why = &p["saliency"];
    let best = probs
        .iter()
        .enumerate()
        .max_by(|a, b| {
            a.1["p"]
                .as_f64()
                .unwrap()
                .total_cmp(&b.1["p"].as_f64().unwrap())
        })
        .unwrap()
        .0;
    assert_eq!(why["class"], best);
    assert_eq!(why["grad_cam"]["layer"], layers[0]["name"]);
    assert_eq!(why["grad_cam"]["shape"], serde_json::json!([28, 28]));
    assert!(why["gradient_x_input"].as_str().unwrap().len() > 4 * 784);
    let (s, body) = post(a, "/api/predict?class=3", &stroke_png());
    assert_eq!(s, 200, "{body}");
    assert_eq!(json(&body)["saliency"]["class"], 3);
    assert_eq!(post(a, "/api/predict?class=10", &stroke_png()).0, 400);
    assert_eq!(post(a, "/api/predict?class=x", &stroke_png()).0, 400);

    // The arithmetic of one unit is the model's own: a conv unit on the
    // padded edge and one inside, a pooling unit, the softmax output.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
    // The strongest unit of maps 1 and 2 (positive: not hidden by the ReLU).
    let conv = f32s(&p["layers"][0]["values"]);
    let strongest = |map: usize| {
        let i = (0..784)
            .max_by(|&a, &b| conv[a * 4 + map].total_cmp(&conv[b * 4 + map]))
            .unwrap();
        assert!(conv[i * 4 + map] > 0.0);
        (0, map, i / 28, i % 28)
    };
    for (layer, map, y, x) in [(0, 2, 0, 0), strongest(1), strongest(2), (1, 3, 5, 7)] {
        let url = format!("/api/arithmetic?layer={layer}&map={map}&y={y}&x={x}");
        let (s, body) = post(a, &url, &stroke_png());
        assert_eq!(s, 200, "{url}: {body}");
        let v = json(&body);
        let (got, want) = (
            v["result"].as_f64().unwrap(),
            v["model_output"].as_f64().unwrap(),
        );
        assert!(close(got, want), "{url}: {got} vs the model's {want}");
        if layer == 0 {
            let products: f64 = v["patch"]
                .as_array()
                .unwrap()
                .iter()
                .zip(v["weights"].as_array().unwrap())
                .map(|(p, w)| p.as_f64().unwrap() * w.as_f64().unwrap())
                .sum();
            assert!(close(products, v["sum"].as_f64().unwrap()), "{body}");
            assert_eq!(v["patch"].as_array().unwrap().len(), 9);
        }
        if (y, x) == (0, 0) {
            // The window hangs over the padding above and to the left.
            assert_eq!(v["rows"][0], serde_json::Value::Null, "{body}");
        }
    }
    let last = layers.len() - 1;
    let url = format!("/api/arithmetic?layer={last}&map=0&y=0&x=0");
    let (s, body) = post(a, &url, &stroke_png());
    assert_eq!(s, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["kind"], "softmax");
    for (r, m) in v["result"]
        .as_array()
        .unwrap()
        .iter()
        .zip(v["model_output"].as_array().unwrap())
    {
        assert!(close(r.as_f64().unwrap(), m.as_f64().unwrap()), "{body}");
    }
    assert_eq!(
        post(a, "/api/arithmetic?layer=9&map=0&y=0&x=0", &stroke_png()).0,
        404
    );
    // Flatten has no window.
    assert_eq!(
        post(a, "/api/arithmetic?layer=2&map=0&y=0&x=0", &stroke_png()).0,
        404
    );
    assert_eq!(
        post(a, "/api/arithmetic?layer=0&map=4&y=0&x=0", &stroke_png()).0,
        404
    );
    assert_eq!(
        post(a, "/api/arithmetic?layer=0&map=0&y=0", &stroke_png()).0,
        400
    );

    drop(srv);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn uploads_are_prepared_as_mnists_digits_were() {
    let d = tmp("serve-prepare");
    let run = train_small(&d);
    let srv = start(&["serve", &run, "--port", "0"]);
    let a = srv.addr.as_str();

    // An upload is prepared as MNIST's digits were: a dark bar on light
    // paper, off-centre, comes back inverted, 20 pixels tall and centred;
    // the answer carries the input exactly as the model received it.
    let photo = {
        let img = image::GrayImage::from_fn(120, 90, |x, y| {
            image::Luma([if (70..80).contains(&x) && (10..70).contains(&y) {
                20
            } else {
                235
            }])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let input = |p: &serde_json::Value| f32s(&p["input"]["values"]);
    let (s, body) = post(a, "/api/predict", &photo);
    assert_eq!(s, 200, "{body}");
    let p = json(&body);
    assert_eq!(p["preparation"]["inverted"], true, "{}", p["preparation"]);
    let x = input(&p);
    assert_eq!(x.len(), 784);
    let rows: Vec<usize> = (0..28)
        .filter(|r| x[r * 28..(r + 1) * 28].iter().any(|&v| v > 0.5))
        .collect();
    assert_eq!((rows.len(), rows[0]), (20, 4), "{rows:?}");
    assert!(x[0] == 0.0 && x[783] == 0.0, "paper is black");
    let (s, body) = post(a, "/api/predict?prepare=0", &photo);
    assert_eq!(s, 200, "{body}");
    let p = json(&body);
    assert_eq!(p["preparation"]["digit"], false);
    let mean = input(&p).iter().sum::<f32>() / 784.0;
    assert!(mean > 0.7, "unprepared, the paper stays light: {mean}");
    assert_eq!(post(a, "/api/predict?prepare=yes", &photo).0, 400);

    drop(srv);
    let _ = std::fs::remove_dir_all(&d);
}

/// A colour model's upload is resized as `convnet predict` resizes (no digit
/// preparation, whatever the switch says): the input sent back is the
/// resized photo, and the probabilities are predict's.
#[test]
fn colour_uploads_are_resized_as_predict_does() {
    let d = tmp("serve-colour");
    make_folder(&d.join("data"), 12, 20);
    let data = format!("folder:{}", d.join("data").display());
    let o = TinyRun::new(&d, "colour")
        .with("--data", &data)
        .with("--input", "16x16x3")
        .with("--model", "2C3-F-2")
        .command_defaults()
        .run();
    assert!(o.status.success(), "{}", text(&o));
    let run = d.join("colour");
    // A 48x30 photo with stripes: the resize has something to average.
    let photo = image::RgbImage::from_fn(48, 30, |x, y| {
        image::Rgb([
            if x % 6 < 3 { 230 } else { 20 },
            (y * 8) as u8,
            (x * 5) as u8,
        ])
    });
    let file = d.join("photo.png");
    photo.save(&file).unwrap();
    let bytes = std::fs::read(&file).unwrap();

    let srv = start(&["serve", run.to_str().unwrap(), "--port", "0"]);
    let (s, body) = post(srv.addr.as_str(), "/api/predict?prepare=1", &bytes);
    assert_eq!(s, 200, "{body}");
    let p = json(&body);
    assert_eq!(p["preparation"]["digit"], false, "{}", p["preparation"]);
    assert_eq!(p["input"]["shape"], serde_json::json!([16, 16, 3]));
    let img = convnet_data::image_from_memory(&bytes, "photo").unwrap();
    let want: Vec<f32> = convnet_data::stream::resize_image(&img, 16, 16, 3, &file)
        .unwrap()
        .iter()
        .map(|&b| b as f32 / 255.0)
        .collect();
    assert_eq!(f32s(&p["input"]["values"]), want);

    let csv = d.join("p.csv");
    let o = convnet(&[
        "predict",
        run.to_str().unwrap(),
        file.to_str().unwrap(),
        "--output",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let table = std::fs::read_to_string(&csv).unwrap();
    let row: Vec<f64> = table
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .rev()
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    let served: Vec<f64> = p["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["p"].as_f64().unwrap())
        .collect();
    // The CSV's last two columns are p0, p1 (read backwards).
    for (k, want) in [(0, row[1]), (1, row[0])] {
        assert!(
            (served[k] - want).abs() < 1e-6,
            "class {k}: served {served:?}, predict {table}"
        );
    }
    drop(srv);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn train_with_serve_shows_live_curves_and_predicts_with_the_newest_checkpoint() {
    let d = tmp("train-serve");
    let out = d.to_str().unwrap().to_string();
    let srv = start(&[
        "train",
        "--model",
        "4C3-P2-10",
        "--limit",
        "4800",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--quiet",
        "--out",
        &out,
        "--serve",
        "--serve-port",
        "0",
    ]);
    let a = srv.addr.as_str();
    // Pause as soon as a batch is done: the step stays where it is while
    // paused; then resume.
    let at = |h: &serde_json::Value| (h["epoch"].as_u64(), h["step"].as_u64());
    for _ in 0..1000 {
        if json(&get(a, "/api/history").1)["step"].as_u64() >= Some(1) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (s, body) = post(a, "/api/pause?on=1", b"");
    assert_eq!(s, 200, "{body}");
    let p = json(&body);
    assert_eq!(
        (p["paused"].clone(), p["training"].clone()),
        (true.into(), true.into()),
        "{p}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let held = at(&json(&get(a, "/api/history").1));
    std::thread::sleep(std::time::Duration::from_millis(700));
    let h = json(&get(a, "/api/history").1);
    assert_eq!(at(&h), held, "training went on while paused");
    assert_eq!(h["total_epochs"], 2);
    assert_eq!(post(a, "/api/pause?on=2", b"").0, 400);
    // A new rate from the next batch: 5e-4 for the rest of epoch 1, and the
    // schedule's decay (0.95 per epoch) goes on from it.
    let (s, body) = post(a, "/api/lr?value=0.0005", b"");
    assert_eq!(s, 200, "{body}");
    assert!((json(&body)["lr_pending"].as_f64().unwrap() - 5e-4).abs() < 1e-9);
    assert_eq!(post(a, "/api/lr?value=-1", b"").0, 400);
    assert_eq!(post(a, "/api/lr?value=x", b"").0, 400);
    assert_eq!(json(&post(a, "/api/pause?on=0", b"").1)["paused"], false);
    // Poll until training is done (the server stays up after it).
    let mut h = serde_json::Value::Null;
    for _ in 0..600 {
        let (s, body) = get(a, "/api/history");
        assert_eq!(s, 200);
        h = json(&body);
        if h["training"] == false && h["epochs"].as_array().unwrap().len() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(h["training"], false, "{h}");
    assert_eq!(h["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(
        (h["epoch"].as_u64(), h["total_epochs"].as_u64()),
        (Some(2), Some(2)),
        "{h}"
    );
    let rates: Vec<f64> = h["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["lr"].as_f64().unwrap())
        .collect();
    assert!(
        (rates[0] - 5e-4).abs() < 1e-8 && (rates[1] - 4.75e-4).abs() < 1e-8,
        "{rates:?}"
    );
    let batches = h["batches"].as_array().unwrap();
    assert!(
        batches.len() >= 2 * 100,
        "per-batch points: {}",
        batches.len()
    );
    assert_eq!(json(&get(a, "/api/model").1)["live"], true);
    let (s, body) = post(a, "/api/predict", &stroke_png());
    assert_eq!(s, 200, "{body}");
    drop(srv);
    let _ = std::fs::remove_dir_all(&d);
}

/// The server under hostile clients: 70 connections that send a request
/// head a byte at a time, image bombs uploaded in parallel, smuggling-style
/// headers, another site's Host; a normal client is still answered.
#[test]
fn hostile_clients_neither_lock_out_others_nor_blow_up_memory() {
    let out = tmp("serve-hostile");
    let run = train_small(&out);
    let server = start(&["serve", &run, "--port", "0"]);
    let addr = server.addr.clone();
    // 70 slow clients: more than the 64 connection slots.
    let mut slow = Vec::new();
    for _ in 0..70 {
        let mut s = TcpStream::connect(&addr).unwrap();
        let _ = s.write_all(b"GET /api/model HTTP/1.1\r\nHost: localhost\r\nX-Slow: ");
        slow.push(s);
    }
    for round in 0..3 {
        // A byte from each (what kept every slot before), then a normal client.
        for s in &mut slow {
            let _ = s.write_all(b"a");
        }
        let begin = std::time::Instant::now();
        let (status, body) = get(&addr, "/api/model");
        let took = begin.elapsed();
        assert_eq!(status, 200, "round {round}: {body}");
        assert!(
            took < std::time::Duration::from_secs(2),
            "round {round}: answered after {took:?}"
        );
    }
    drop(slow);
    // Two Content-Length headers: refused, neither is believed.
    let (status, body) = raw(
        &addr,
        b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nContent-Length: 0\r\n\r\nabc",
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("more than one Content-Length"));
    // HEAD is GET without the body.
    let (status, body) = raw(&addr, b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!((status, body.len()), (200, 0));
    // Another site's name as Host (DNS rebinding): refused.
    let (status, body) = raw(
        &addr,
        b"GET /api/model HTTP/1.1\r\nHost: evil.example:8080\r\n\r\n",
    );
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    // The page comes with a Content-Security-Policy that forbids inline script.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    let _ = s.read_to_string(&mut page);
    let csp = page
        .lines()
        .find(|l| l.starts_with("Content-Security-Policy: "))
        .unwrap_or_else(|| panic!("no CSP in {page}"));
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // Eight image bombs (20000x20000 gray PNGs, about 400 KB each) at once:
    // each refused from its header, the server's memory stays small.
    let bomb = std::sync::Arc::new(png_bomb(20_000));
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let uploads: Vec<_> = (0..8)
        .map(|_| {
            let (addr, bomb) = (addr.clone(), bomb.clone());
            std::thread::spawn(move || post(&addr, "/api/predict", &bomb))
        })
        .collect();
    for u in uploads {
        let (status, body) = u.join().unwrap();
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("20000x20000 = 400000000 pixels"), "{body}");
    }
    let peak = peak_mib(server.child.id());
    assert!(peak < 300, "the server peaked at {peak} MiB");
    eprintln!("server peak memory after 8 bombs: {peak} MiB");
    drop(server);
    let _ = std::fs::remove_dir_all(&out);
}

/// Listening beyond the loopback is allowed, with a warning (the model and
/// the run's test images are then visible to the network).
#[test]
fn a_non_loopback_host_is_warned_about() {
    let out = tmp("serve-host");
    let run = train_small(&out);
    let mut child = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["serve", &run, "--port", "0", "--host", "0.0.0.0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.starts_with("warning: --host 0.0.0.0 is not this machine's loopback"),
        "{first}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Twenty first requests for the evaluation at once: the test set is
/// predicted once and shared (each used to run its own, 2 GB and 32 s
/// together on MNIST).
#[test]
fn parallel_first_evaluations_are_computed_once() {
    let out = tmp("serve-eval");
    let run = train_small(&out);
    let mut child = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(["serve", &run, "--port", "0"])
        .env("CONVNET_SERVE_LOG", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(i) = line.find("http://") {
            let rest = &line[i + 7..];
            break rest[..rest.find('/').unwrap()].to_string();
        }
    };
    let answers: Vec<_> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || get(&addr, "/api/evaluation"))
        })
        .collect();
    let bodies: Vec<String> = answers
        .into_iter()
        .map(|h| {
            let (status, body) = h.join().unwrap();
            assert_eq!(status, 200, "{body}");
            body
        })
        .collect();
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    let _ = child.kill();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = child.wait();
    assert_eq!(err.matches("evaluation: predicting").count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(&out);
}
