//! The explorer's JSON endpoints (see `mod.rs` for the routes).
//!
//! Values (the model's input, every layer's output, a filter) travel as the
//! base64 of their little-endian `f32` bytes, channels last as the tensor
//! is, with their min and max: the page shows and colours the model's own
//! numbers, and hovering a unit reads its exact value.

use super::geometry::receptive_fields;
use super::{Explorer, Reply};
use base64::Engine;
use convnet_nn::{Callback, EpochLogs, History, Model};
use convnet_tensor::Tensor;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most test images the evaluation view predicts (the whole MNIST test set).
const EVAL_LIMIT: usize = 10_000;
/// Mistakes listed, most confident first.
const MISTAKES: usize = 48;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Class names of the run, or the label numbers.
fn class_names(ex: &Explorer, k: usize) -> Vec<String> {
    crate::pictures::names(&ex.cfg.classes, k)
}

/// The model to predict with: the run's, or during training the newest
/// checkpoint's (reloaded when a new epoch is saved).
fn with_model<T>(
    ex: &Explorer,
    f: impl FnOnce(&mut Model) -> Result<T, Reply>,
) -> Result<T, Reply> {
    if ex.live.is_some() {
        let ckpt = ex.run.join(convnet_run::folder::CHECKPOINTS);
        let latest = std::fs::read_to_string(ckpt.join(convnet_nn::checkpoint::LATEST)).ok();
        let mut from = lock(&ex.loaded_from);
        if latest.is_some() && *from != latest {
            if let Ok((m, _)) = Model::load_checkpoint(&ckpt) {
                *lock(&ex.model) = Some(m);
                *from = latest;
            }
        }
        if lock(&ex.model).is_none() {
            // Before the first checkpoint: the starting weights, if saved.
            *lock(&ex.model) = Model::load(&ex.run).ok();
        }
    }
    let mut guard = lock(&ex.model);
    match guard.as_mut() {
        Some(m) => {
            m.set_precision(ex.precision);
            f(m)
        }
        None => Err(Reply::error(
            503,
            "no weights yet: the first epoch has not finished",
        )),
    }
}

/// `GET /api/model`: the graph with shapes, parameters, formulas, classes.
pub fn model_json(ex: &Explorer) -> Result<Value, Reply> {
    let spec = &ex.cfg.model;
    let summary = spec
        .summary()
        .map_err(|e| Reply::error(500, format!("the run's model is invalid: {e}")))?;
    let outputs: usize = summary
        .rows
        .last()
        .map(|r| r.output_shape.iter().product())
        .unwrap_or(0);
    let layers: Vec<Value> = summary
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "index": i,
                "name": r.name,
                "kind": r.kind,
                "role": spec.layers[i].layer.layer_kind().role().name(),
                "output_shape": r.output_shape,
                "params": r.params,
                "formula": r.formula,
                "inputs": r.connected_to,
                "config": serde_json::to_value(&spec.layers[i].layer).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(json!({
        "run": ex.run.display().to_string(),
        "input_shape": summary.input_shape,
        "trainable": summary.trainable,
        "non_trainable": summary.non_trainable,
        "graph": summary.graph,
        "classes": class_names(ex, outputs),
        "layers": layers,
        "live": ex.live.is_some(),
    }))
}

/// Uploads decoded at once: with the pixel limit, the server's decoding
/// memory is at most this many times `4 x --max-pixels` bytes.
const DECODERS: usize = 2;

/// A counting semaphore of [`DECODERS`] slots.
struct Slots {
    used: Mutex<usize>,
    freed: std::sync::Condvar,
}

static DECODE_SLOTS: Slots = Slots {
    used: Mutex::new(0),
    freed: std::sync::Condvar::new(),
};

/// A held slot, given back when dropped.
struct Slot(&'static Slots);

impl Slots {
    fn acquire(&'static self) -> Slot {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        while *used >= DECODERS {
            used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += 1;
        Slot(self)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.used.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// How an upload was made into the model's input.
struct Prepared {
    x: Tensor,
    /// What was done, for the page.
    json: Value,
}

/// Decodes an uploaded image to the model's input `[1, H, W, C]` in [0, 1]:
/// for a 28x28x1 model with `digit`, prepared as MNIST's digits were
/// (`convnet_data::digit`); otherwise resized as `convnet predict` resizes.
fn decode_upload(body: &[u8], shape: &[usize], digit: bool) -> Result<Prepared, Reply> {
    if shape.len() != 3 || !(shape[2] == 1 || shape[2] == 3) {
        return Err(Reply::error(
            400,
            format!("the model takes inputs {shape:?}, not images"),
        ));
    }
    // Decoding is bounded: by the pixel limit, checked from the header, and
    // by at most DECODERS uploads decoded at once.
    let _slot = DECODE_SLOTS.acquire();
    let img = convnet_data::image_from_memory(body, "upload")
        .map_err(|e| Reply::error(400, format!("the body is not a readable image: {e}")))?;
    let (h, w, c) = (shape[0], shape[1], shape[2]);
    let source = std::path::Path::new("upload");
    let resize = |h: usize, w: usize| {
        convnet_data::stream::resize_image(&img, h, w, c, source)
            .map_err(|e| Reply::error(400, e.to_string()))
    };
    let side = convnet_data::digit::SIDE;
    let (values, json) = if digit && (h, w, c) == (side, side, 1) {
        // Large photos are brought to at most 280 pixels a side first (ten
        // times the field; the ink ends up in 20 pixels anyway).
        let (iw, ih) = (img.width() as usize, img.height() as usize);
        let k = (280.0 / ih.max(iw) as f64).min(1.0);
        let (sh, sw) = (
            ((ih as f64 * k).round() as usize).max(1),
            ((iw as f64 * k).round() as usize).max(1),
        );
        let gray: Vec<f32> = resize(sh, sw)?.iter().map(|&b| b as f32 / 255.0).collect();
        let d = convnet_data::prepare_digit(&gray, sh, sw)
            .map_err(|e| Reply::error(400, e.to_string()))?;
        let note = match d.ink {
            None => "no ink found: the model sees an empty field".to_string(),
            Some(_) if d.inverted => "light background inverted; ink fitted to 20x20 and centred by mass in 28x28, as MNIST's digits".to_string(),
            Some(_) => "ink fitted to 20x20 and centred by mass in 28x28, as MNIST's digits".to_string(),
        };
        let json = json!({"digit": true, "inverted": d.inverted, "ink": d.ink.map(|(t, b, l, r)| [t, b, l, r]),
                          "source": [sh, sw], "note": note});
        (d.pixels, json)
    } else {
        let bytes = resize(h, w)?;
        let note = format!("resized to {h}x{w} as `convnet predict` does");
        let json = json!({"digit": false, "note": note});
        (bytes.iter().map(|&b| b as f32 / 255.0).collect(), json)
    };
    let x = Tensor::from_vec(&[1, h, w, c], values).expect("sizes agree");
    Ok(Prepared { x, json })
}

/// Values as base64 of their little-endian `f32` bytes (the page reads them
/// into a `Float32Array`).
fn b64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    b64(&bytes)
}

/// A value's `{shape, min, max, values}` (shape without the batch).
fn tensor_json(t: &Tensor) -> Value {
    let (lo, hi) = range(t.data());
    json!({"shape": &t.shape()[1..], "min": lo, "max": hi, "values": b64_f32(t.data())})
}

/// The smallest and largest finite values (0, 0 when there are none).
fn range(v: &[f32]) -> (f32, f32) {
    let (lo, hi) = v
        .iter()
        .filter(|x| x.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    if lo.is_finite() {
        (lo, hi)
    } else {
        (0.0, 0.0)
    }
}

/// `POST /api/predict[?prepare=0][&class=K]` (body: an image file):
/// probabilities and every layer's output for that image, the input exactly
/// as the model received it, how the upload was prepared, and why: Grad-CAM
/// and gradient x input of class K (the predicted class when absent).
pub fn predict(
    ex: &Explorer,
    body: &[u8],
    prepare: bool,
    class: Option<usize>,
) -> Result<Value, Reply> {
    if body.is_empty() {
        return Err(Reply::error(
            400,
            "empty body: send an image file (PNG, JPEG, BMP, GIF)",
        ));
    }
    let Prepared { x, json: how } = decode_upload(body, &ex.cfg.model.input_shape, prepare)?;
    let names = ex.cfg.model.summary().map(|s| s.rows).unwrap_or_default();
    with_model(ex, |m| {
        let k: usize = m.output_shape().iter().product();
        let classes = class_names(ex, k);
        if let Some(c) = class.filter(|&c| c >= classes.len()) {
            return Err(Reply::error(
                400,
                format!("class {c}: the model has {} classes", classes.len()),
            ));
        }
        let (inspection, why) = convnet_lab::saliency::saliency(m, &x, class);
        let mut outs = inspection.outputs;
        if let Some(last) = outs.last_mut() {
            *last = inspection.probabilities;
        }
        let probs = outs.last().map(|t| t.data().to_vec()).unwrap_or_default();
        let probs: Vec<Value> = if probs.len() == 1 {
            vec![
                json!({"class": classes[0], "p": 1.0 - probs[0]}),
                json!({"class": classes[1], "p": probs[0]}),
            ]
        } else {
            probs
                .iter()
                .zip(&classes)
                .map(|(p, c)| json!({"class": c, "p": p}))
                .collect()
        };
        let layers: Vec<Value> = outs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = tensor_json(t);
                v["index"] = json!(i);
                v["name"] = json!(names.get(i).map(|r| r.name.clone()));
                v
            })
            .collect();
        Ok(json!({
            "probabilities": probs,
            "input": tensor_json(&x),
            "preparation": how,
            "layers": layers,
            "saliency": saliency_json(&why, &classes, &names),
        }))
    })
}

/// `POST /api/arithmetic?layer=I&map=C&y=Y&x=X[&prepare=0]` (body: the
/// image): the arithmetic of that unit (see `arithmetic.rs`).
pub fn arithmetic(
    ex: &Explorer,
    body: &[u8],
    prepare: bool,
    unit: super::arithmetic::Unit,
) -> Result<Value, Reply> {
    if body.is_empty() {
        return Err(Reply::error(400, "empty body: send the image"));
    }
    let Prepared { x, .. } = decode_upload(body, &ex.cfg.model.input_shape, prepare)?;
    with_model(ex, |m| super::arithmetic::arithmetic(m, &x, &unit))
}

fn saliency_json(
    s: &convnet_lab::saliency::Saliency,
    classes: &[String],
    names: &[convnet_nn::SummaryRow],
) -> Value {
    let cam = s.grad_cam.as_ref().map(|g| {
        json!({"node": g.node, "layer": names.get(g.node).map(|r| r.name.clone()),
               "shape": g.shape, "weights": b64_f32(&g.weights), "map": b64_f32(&g.map),
               "upsampled": b64_f32(&g.upsampled)})
    });
    json!({"class": s.class, "class_name": classes.get(s.class), "grad_cam": cam,
           "gradient_x_input": b64_f32(&s.gradient_x_input)})
}

/// `GET /api/filter?layer=I&map=C`: filter `C` of convolution node `I`,
/// `[KH, KW, C_in]` scaled over its own range.
pub fn filter(ex: &Explorer, layer: usize, map: usize) -> Result<Value, Reply> {
    with_model(ex, |m| {
        let role = m
            .spec()
            .layers
            .get(layer)
            .map(|n| n.layer.layer_kind().role());
        if role != Some(convnet_nn::Role::Filters) {
            return Err(Reply::error(
                404,
                format!("layer {layer} is not a convolution"),
            ));
        }
        let kernel = m.layers()[layer]
            .params()
            .into_iter()
            .find(|p| p.name == "kernel")
            .map(|p| p.value.clone())
            .ok_or_else(|| Reply::error(404, format!("layer {layer} has no kernel")))?;
        let s = kernel.shape().to_vec(); // [KH, KW, C_in, F]
        if map >= s[3] {
            return Err(Reply::error(
                404,
                format!("layer {layer} has {} filters, not {}", s[3], map + 1),
            ));
        }
        let w: Vec<f32> = kernel
            .data()
            .iter()
            .skip(map)
            .step_by(s[3])
            .copied()
            .collect();
        let (lo, hi) = range(&w);
        Ok(json!({"shape": [s[0], s[1], s[2]], "min": lo, "max": hi, "values": b64_f32(&w)}))
    })
}

/// `GET /api/patch?layer=I&y=Y&x=X`: the input window pixel (Y, X) of
/// node I's output sees.
pub fn patch(ex: &Explorer, layer: usize, y: usize, x: usize) -> Result<Value, Reply> {
    let fields = receptive_fields(&ex.cfg.model, layer, y, x).unwrap_or_default();
    match fields.iter().find(|(n, _)| n.is_none()) {
        Some(&(_, (top, bottom, left, right))) => {
            // Every earlier layer on the way, for the page's highlights.
            let layers: Vec<Value> = fields
                .iter()
                .filter_map(|&(n, (t, b, l, r))| {
                    n.map(|n| json!({"index": n, "top": t, "bottom": b, "left": l, "right": r}))
                })
                .collect();
            Ok(
                json!({"top": top, "bottom": bottom, "left": left, "right": right, "layers": layers}),
            )
        }
        None => Err(Reply::error(
            404,
            format!("layer {layer} has no pixel ({y}, {x}) with a window in the input"),
        )),
    }
}

/// Training progress shared with the server while `train --serve` runs,
/// and the page's pause switch.
#[derive(Default)]
pub struct Live {
    state: Mutex<LiveState>,
    /// Signalled when training is resumed.
    resumed: std::sync::Condvar,
    /// Processes training together (mpirun's ranks; 0 or 1: one).
    ranks: usize,
}

#[derive(Default)]
struct LiveState {
    epochs: Vec<EpochLogs>,
    /// `(epoch + fraction, running loss, running accuracy)`, thinned to at most ~2,000.
    batches: Vec<(f32, f32, f32)>,
    /// The latest step: `(epoch, step, steps)`, epoch 0-based, step 1-based.
    at: Option<(usize, usize, usize)>,
    /// Training waits after its current batch while set.
    paused: bool,
    /// The rate of the latest step.
    lr: Option<f32>,
    /// A rate asked for from the page, applied before the next step.
    new_lr: Option<f32>,
    done: bool,
}

impl Live {
    /// Marks training finished.
    pub fn finish(&self) {
        let mut s = lock(&self.state);
        s.done = true;
        s.paused = false;
        self.resumed.notify_all();
    }

    /// Sets the learning rate from the next batch on.
    pub fn set_lr(&self, lr: f32) {
        lock(&self.state).new_lr = Some(lr);
    }

    /// The progress of a run over `ranks` processes (rank 0 serves it).
    pub fn of_ranks(ranks: usize) -> Live {
        Live {
            ranks,
            ..Live::default()
        }
    }

    /// Pauses training after its current batch, or resumes it. Refused for
    /// a run over several ranks: the others would wait at their next step
    /// for rank 0 until `--rank-timeout` ended the job as hung.
    pub fn set_paused(&self, paused: bool) -> Result<(), String> {
        if paused && self.ranks > 1 {
            return Err(format!(
                "data-parallel training over {} ranks is not paused: the other ranks would wait \
                 for rank 0 at their next step until --rank-timeout ended the job",
                self.ranks
            ));
        }
        let mut s = lock(&self.state);
        s.paused = paused && !s.done;
        self.resumed.notify_all();
        Ok(())
    }
}

/// The callback that feeds [`Live`].
pub struct LiveCallback(pub Arc<Live>);

impl Callback for LiveCallback {
    fn on_batch_begin(
        &mut self,
        model: &mut Model,
        _epoch: usize,
        _step: usize,
        lr: f32,
    ) -> convnet_nn::Result<()> {
        let mut s = lock(&self.0.state);
        let mut now = lr;
        if let Some(new) = s.new_lr.take() {
            if lr > 0.0 {
                // The schedule goes on, scaled: its value times the factor.
                model.set_lr_factor(model.lr_factor() * new / lr);
                now = new;
            }
        }
        s.lr = Some(now);
        Ok(())
    }
    fn on_batch_end(
        &mut self,
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f32,
        accuracy: f32,
    ) -> convnet_nn::Control {
        let mut s = lock(&self.0.state);
        let every = (steps / 200).max(1);
        if step.is_multiple_of(every) || step == steps {
            s.batches.push((
                epoch as f32 + step as f32 / steps.max(1) as f32,
                loss,
                accuracy,
            ));
        }
        s.at = Some((epoch, step, steps));
        // Paused from the page: wait here, between two batches.
        while s.paused {
            s = self.0.resumed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        convnet_nn::Control::Continue
    }
    fn on_epoch_end(
        &mut self,
        _: &mut Model,
        logs: &EpochLogs,
        _: &History,
    ) -> convnet_nn::Result<convnet_nn::Control> {
        lock(&self.0.state).epochs.push(logs.clone());
        Ok(convnet_nn::Control::Continue)
    }
}

fn epoch_json(e: &EpochLogs) -> Value {
    json!({"epoch": e.epoch, "loss": e.loss, "accuracy": e.accuracy,
           "val_loss": e.val_loss, "val_accuracy": e.val_accuracy, "lr": e.lr})
}

/// `GET /api/history`: per-epoch logs (and per-batch ones while training).
pub fn history(ex: &Explorer) -> Value {
    if let Some(live) = &ex.live {
        let s = lock(&live.state);
        let batches: Vec<Value> = s.batches.iter().map(|(t, l, a)| json!([t, l, a])).collect();
        let (epoch, step, steps) = s.at.unwrap_or((0, 0, 0));
        return json!({"epochs": s.epochs.iter().map(epoch_json).collect::<Vec<_>>(),
                      "batches": batches, "training": !s.done, "total_epochs": ex.cfg.epochs,
                      "epoch": epoch + 1, "step": step, "steps": steps, "paused": s.paused,
                      "lr": s.lr, "lr_pending": s.new_lr, "ranks": live.ranks.max(1)});
    }
    let text =
        std::fs::read_to_string(ex.run.join(convnet_run::folder::HISTORY_FILE)).unwrap_or_default();
    let num = |s: Option<&str>| s.and_then(|v| v.trim().parse::<f32>().ok());
    let epochs: Vec<Value> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some(
                json!({"epoch": num(f.first().copied())?, "loss": num(f.get(1).copied()),
                        "accuracy": num(f.get(2).copied()), "val_loss": num(f.get(3).copied()),
                        "val_accuracy": num(f.get(4).copied()), "lr": num(f.get(5).copied())}),
            )
        })
        .collect();
    json!({"epochs": epochs, "batches": [], "training": false, "total_epochs": ex.cfg.epochs})
}

/// `POST /api/pause?on=1|0` while `train --serve` runs: pauses training
/// after its current batch, or resumes it.
pub fn pause(ex: &Explorer, on: bool) -> Result<Value, Reply> {
    let live = ex
        .live
        .as_ref()
        .ok_or_else(|| Reply::error(404, "this run is not training: nothing to pause"))?;
    live.set_paused(on).map_err(|e| Reply::error(409, e))?;
    Ok(history(ex))
}

/// `POST /api/lr?value=R` while `train --serve` runs: the learning rate
/// from the next batch on (the schedule goes on, scaled to it).
pub fn set_lr(ex: &Explorer, value: &str) -> Result<Value, Reply> {
    let live = ex
        .live
        .as_ref()
        .ok_or_else(|| Reply::error(404, "this run is not training: no rate to set"))?;
    let lr: f32 = value
        .parse()
        .ok()
        .filter(|r: &f32| r.is_finite() && *r > 0.0 && *r <= 10.0)
        .ok_or_else(|| {
            Reply::error(
                400,
                format!("value '{value}': expected a learning rate above 0 and at most 10"),
            )
        })?;
    live.set_lr(lr);
    Ok(history(ex))
}

/// Predictions of the run's test split (computed once, on first request).
pub struct Evaluation {
    data: convnet_data::LabeledImages,
    json: Value,
}

fn evaluation(ex: &Explorer) -> Result<Arc<Evaluation>, Reply> {
    // Held while computing: parallel first requests wait for the one
    // evaluation instead of each running their own.
    let mut cached = lock(&ex.evaluation);
    if let Some(e) = cached.as_ref() {
        return Ok(Arc::clone(e));
    }
    let loaded = ex
        .cfg
        .load_data()
        .map_err(|e| Reply::error(404, format!("the run's data cannot be loaded here: {e}")))?;
    let (data, what) = match loaded.test {
        Some(t) => (t, "test"),
        None => (loaded.train, "training"),
    };
    let data = data.take(EVAL_LIMIT);
    if std::env::var_os("CONVNET_SERVE_LOG").is_some() {
        eprintln!("evaluation: predicting {} {what} images", data.len());
    }
    let (probs, truth) = with_model(ex, |m| {
        convnet_run::predict_images(m, &data, None, 256)
            .map_err(|e| Reply::error(500, e.to_string()))
    })?;
    let k = probs.sample_len().max(1);
    let pred = convnet_lab::report::predicted_classes(&probs);
    let classes = class_names(ex, k);
    let confusion = convnet_lab::report::confusion_matrix(&truth, &pred, classes.len());
    let wrong = convnet_lab::report::worst_mistakes(&probs, &truth, MISTAKES);
    let examples = convnet_lab::report::best_examples(&probs, &truth, classes.len());
    let hits = truth.iter().zip(&pred).filter(|(t, p)| t == p).count();
    let json = json!({
        "split": what,
        "samples": truth.len(),
        "accuracy": hits as f64 / truth.len().max(1) as f64,
        "classes": classes,
        "confusion": confusion,
        "examples": examples.iter().enumerate().filter_map(|(c, e)| e.map(|(index, p)|
            json!({"index": index, "class": c, "confidence": p}))).collect::<Vec<_>>(),
        "mistakes": wrong.iter().map(|m| json!({"index": m.index, "truth": m.truth,
            "pred": m.pred, "confidence": m.confidence})).collect::<Vec<_>>(),
    });
    let e = Arc::new(Evaluation { data, json });
    *cached = Some(Arc::clone(&e));
    Ok(e)
}

/// `GET /api/evaluation`: accuracy, confusion matrix, most confident mistakes.
pub fn evaluation_json(ex: &Explorer) -> Result<Value, Reply> {
    Ok(evaluation(ex)?.json.clone())
}

/// `GET /api/sample?index=I`: image I of the evaluated split, as PNG.
pub fn sample_png(ex: &Explorer, index: usize) -> Result<Vec<u8>, Reply> {
    let e = evaluation(ex)?;
    if index >= e.data.len() {
        return Err(Reply::error(
            404,
            format!("index {index}: the split has {} images", e.data.len()),
        ));
    }
    let bytes = e
        .data
        .image_bytes(index)
        .map_err(|err| Reply::error(500, err.to_string()))?;
    let [h, w, c] = e.data.image_shape();
    let mut png = Vec::new();
    let color = if c == 1 {
        image::ExtendedColorType::L8
    } else {
        image::ExtendedColorType::Rgb8
    };
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &bytes,
        w as u32,
        h as u32,
        color,
    )
    .map_err(|err| Reply::error(500, err.to_string()))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_travel_as_little_endian_f32_and_ranges_skip_non_finite() {
        let text = b64_f32(&[1.0, -2.5]);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat()
        );
        assert_eq!(range(&[3.0, f32::NAN, -1.0, f32::INFINITY]), (-1.0, 3.0));
        assert_eq!(range(&[]), (0.0, 0.0));
    }

    #[test]
    fn a_run_over_several_ranks_is_not_paused() {
        let one = Live::default();
        assert!(one.set_paused(true).is_ok() && lock(&one.state).paused);
        let two = Live::of_ranks(2);
        let e = two.set_paused(true).unwrap_err();
        assert!(e.contains("2 ranks") && e.contains("--rank-timeout"), "{e}");
        assert!(!lock(&two.state).paused);
        assert!(two.set_paused(false).is_ok());
    }
}
