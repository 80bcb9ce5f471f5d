//! The bundled, real MNIST files: headers, counts and label histograms.

use convnet_data::Mnist;

#[test]
fn bundled_mnist_has_the_published_contents() {
    let m = Mnist::load(&Mnist::bundled_dir()).unwrap();
    assert_eq!((m.train.len(), m.train.image_shape()), (60000, [28, 28, 1]));
    assert_eq!((m.test.len(), m.test.image_shape()), (10000, [28, 28, 1]));
    // Kept as bytes: one per pixel.
    assert_eq!(m.train.resident_bytes(), 60000 * 784);
    let hist = |labels: Vec<usize>| {
        let mut h = [0usize; 10];
        labels.iter().for_each(|&l| h[l] += 1);
        h
    };
    assert_eq!(
        hist(m.train.labels()),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        hist(m.test.labels()),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(
        m.train.take(10).labels(),
        vec![5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    );
    // Mean pixel 33.318 / 255 = 0.1307, over batches converted to [0, 1].
    let all: Vec<usize> = (0..60000).collect();
    let sum: f64 = all
        .chunks(6000)
        .map(|c| {
            m.train
                .batch(c)
                .unwrap()
                .0
                .data()
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>()
        })
        .sum();
    let mean = sum / (60000.0 * 784.0);
    assert!((mean - 0.1307).abs() < 1e-4, "{mean}");
}
