//! Experiments on a tiny budget, and the pictures of a trained net.

use convnet_data::Mnist;
use convnet_lab::experiment::{self, ExperimentConfig, FAMILIES};
use convnet_lab::explain::explain;
use convnet_lab::grid::{channel, normalize, GridLayout};
use convnet_nn::*;
use std::path::PathBuf;

fn mnist() -> Mnist {
    Mnist::load(&Mnist::bundled_dir()).unwrap()
}

fn tiny() -> ExperimentConfig {
    ExperimentConfig {
        epochs: 1,
        batch_size: 50,
        train_size: 100,
        val_size: 50,
        test_size: 50,
        seed: 1,
        verbosity: Verbosity::Silent,
        ranks: Default::default(),
        precision: Default::default(),
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("convnet-lab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn every_family_lists_the_kernels_notations_and_runs_on_a_tiny_budget() {
    let want: &[(&str, &[&str])] = &[
        (
            "conv-pool-pairs",
            &[
                "[24C5-P2]-256-10",
                "[24C5-P2]-[48C5-P2]-256-10",
                "[24C5-P2]-[48C5-P2]-[64C5-P2]-256-10",
            ],
        ),
        (
            "feature-maps",
            &[
                "[8C5-P2]-[16C5-P2]-256-10",
                "[16C5-P2]-[32C5-P2]-256-10",
                "[24C5-P2]-[48C5-P2]-256-10",
                "[32C5-P2]-[64C5-P2]-256-10",
                "[48C5-P2]-[96C5-P2]-256-10",
                "[64C5-P2]-[128C5-P2]-256-10",
            ],
        ),
        (
            "dense-size",
            &[
                "[32C5-P2]-[64C5-P2]-10",
                "[32C5-P2]-[64C5-P2]-32-10",
                "[32C5-P2]-[64C5-P2]-64-10",
                "[32C5-P2]-[64C5-P2]-128-10",
                "[32C5-P2]-[64C5-P2]-256-10",
                "[32C5-P2]-[64C5-P2]-512-10",
                "[32C5-P2]-[64C5-P2]-1024-10",
                "[32C5-P2]-[64C5-P2]-2048-10",
            ],
        ),
        (
            "dropout",
            &[
                "32C5-P2-D0.0-64C5-P2-D0.0-128-D0.0-10",
                "32C5-P2-D0.1-64C5-P2-D0.1-128-D0.1-10",
                "32C5-P2-D0.2-64C5-P2-D0.2-128-D0.2-10",
                "32C5-P2-D0.3-64C5-P2-D0.3-128-D0.3-10",
                "32C5-P2-D0.4-64C5-P2-D0.4-128-D0.4-10",
                "32C5-P2-D0.5-64C5-P2-D0.5-128-D0.5-10",
                "32C5-P2-D0.6-64C5-P2-D0.6-128-D0.6-10",
                "32C5-P2-D0.7-64C5-P2-D0.7-128-D0.7-10",
            ],
        ),
    ];
    let data = mnist();
    let cfg = tiny();
    for name in FAMILIES {
        let fam = experiment::builtin(name).unwrap();
        if let Some((_, notations)) = want.iter().find(|(n, _)| *n == name) {
            let got: Vec<&str> = fam.variants.iter().map(|v| v.notation.as_str()).collect();
            assert_eq!(&got, notations, "{name}");
        }
        let results = experiment::run_family(&fam, &data, &cfg).unwrap();
        assert_eq!(results.len(), fam.variants.len(), "{name}");
        let md = experiment::markdown_table(&fam, &results, &cfg);
        // Header, separator and one row per variant.
        assert_eq!(
            md.lines().filter(|l| l.starts_with('|')).count(),
            2 + fam.variants.len(),
            "{md}"
        );
        let csv = experiment::csv_table(&results);
        assert_eq!(csv.lines().count(), 1 + fam.variants.len());
        for (r, v) in results.iter().zip(&fam.variants) {
            // The row belongs to its variant, counts its parameters as the
            // summary does, and its accuracies are counts over the 50 test
            // and 50 validation images (a wrong split or size would not be).
            assert_eq!(
                (r.name.as_str(), r.notation.as_str()),
                (v.name.as_str(), v.notation.as_str())
            );
            assert_eq!(
                r.params,
                v.model().unwrap().summary().unwrap().total(),
                "{}",
                v.name
            );
            let hits = r.test_accuracy * 50.0;
            assert!(
                (hits - hits.round()).abs() < 1e-3,
                "{}: {} is not k/50",
                v.name,
                r.test_accuracy
            );
            let val = r.history.epochs[0]
                .val_accuracy
                .expect("validation each epoch")
                * 50.0;
            assert!(
                (val - val.round()).abs() < 1e-3,
                "{}: validation {val}/50",
                v.name
            );
            assert_eq!(r.best_val_accuracy * 50.0, val);
            assert_eq!(r.history.epochs.len(), 1);
            assert_eq!(r.train_accuracy, r.history.epochs[0].accuracy);
        }
    }
    let adv = experiment::builtin("advanced").unwrap();
    assert_eq!(adv.variants[3].notation, experiment::FINAL_NET);
    assert!(adv.variants[4].augment.is_some());
    assert_eq!(
        adv.variants[3].model().unwrap().summary().unwrap().total(),
        327_242
    );
    assert!(experiment::builtin("nope").is_err());
}

#[test]
fn custom_families_from_notations_and_toml() {
    let f = experiment::from_notations("16C5-P2-10, 8C3-P2-10", "same");
    assert_eq!(f.variants.len(), 2);
    let d = tmp("toml");
    let p = d.join("fam.toml");
    std::fs::write(&p, "name = \"mine\"\nquestion = \"?\"\n[[variant]]\nname = \"a\"\nnotation = \"8C3-P2-10\"\n[[variant]]\nname = \"b\"\nnotation = \"8C3-P2-10\"\nbatch_size = 25\n").unwrap();
    let f = experiment::from_toml(&p).unwrap();
    assert_eq!(
        (f.name.as_str(), f.variants.len(), f.variants[1].batch_size),
        ("mine", 2, Some(25))
    );
    let r = experiment::run_family(&f, &mnist(), &tiny()).unwrap();
    assert_eq!(r.len(), 2);
    // Same net and seed: only b's batch size differs (2 steps of 50 vs 4 of 25),
    // so its training differs, and a second run of the family repeats both exactly.
    assert_ne!(r[0].history.epochs[0].loss, r[1].history.epochs[0].loss);
    let again = experiment::run_family(&f, &mnist(), &tiny()).unwrap();
    for (a, b) in r.iter().zip(&again) {
        assert_eq!(a.history.epochs[0].loss, b.history.epochs[0].loss);
        assert_eq!(a.test_accuracy, b.test_accuracy);
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn feature_map_grid_equals_the_models_activations() {
    let data = mnist();
    let mut model = Sequential::new(&[28, 28, 1])
        .conv2d(Conv2dConfig::new(4, 3).with_activation(Activation::Relu))
        .max_pool(PoolConfig::new(2))
        .flatten()
        .dense(DenseConfig::new(10).with_activation(Activation::Softmax))
        .build(3)
        .unwrap();
    let image = data
        .test
        .take(1)
        .images_tensor()
        .unwrap()
        .reshape(&[28, 28, 1])
        .unwrap();
    let dir = tmp("explain");
    let labels: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let pics = explain(&mut model, &image, &labels, &dir).unwrap();
    let names: Vec<String> = pics
        .iter()
        .map(|p| p.path.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            "input.png",
            "layer00_conv_maps.png",
            "filters.png",
            "layer01_pooling.png",
            "probabilities.png"
        ]
    );
    let input = image::open(dir.join("input.png")).unwrap().to_rgb8();
    assert_eq!(input.dimensions(), (224, 224));
    // The conv grid: 4 maps of 26x26 at scale 3 (84 / 26), 2 columns.
    let grid = image::open(dir.join("layer00_conv_maps.png"))
        .unwrap()
        .to_rgb8();
    let layout = GridLayout::new(4, 26, 26, 3);
    assert_eq!(grid.dimensions(), layout.size());
    let act = model.trace(&image.clone().reshape(&[1, 28, 28, 1]).unwrap())[0].clone();
    for ch in 0..4 {
        let want = normalize(&channel(act.data(), 4, ch));
        let (ox, oy) = layout.origin(ch);
        for y in 0..26 {
            for x in 0..26 {
                let px = grid
                    .get_pixel(ox + 3 * x as u32 + 1, oy + 3 * y as u32 + 1)
                    .0;
                assert_eq!(px[0], want[y * 26 + x], "map {ch} pixel ({y}, {x})");
            }
        }
    }
    let bars = image::open(dir.join("probabilities.png")).unwrap();
    assert_eq!((bars.width(), bars.height()), (720, 400));
    let _ = std::fs::remove_dir_all(&dir);
}
