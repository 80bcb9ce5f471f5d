//! The bundled, real MNIST files: headers, counts and label histograms.

use convnet_data::Mnist;

#[test]
fn bundled_mnist_has_the_published_contents() {
    let m = Mnist::load(&Mnist::bundled_dir()).unwrap();
    assert_eq!(m.train.images.shape(), &[60000, 28, 28, 1]);
    assert_eq!(m.test.images.shape(), &[10000, 28, 28, 1]);
    let hist = |labels: &[f32]| {
        let mut h = [0usize; 10];
        labels.iter().for_each(|&l| h[l as usize] += 1);
        h
    };
    assert_eq!(
        hist(m.train.labels.data()),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        hist(m.test.labels.data()),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let first: Vec<f32> = m.train.labels.data()[..10].to_vec();
    assert_eq!(first, vec![5., 0., 4., 1., 9., 2., 1., 3., 1., 4.]);
    // Mean pixel 33.318 / 255 = 0.1307.
    let mean: f64 =
        m.train.images.data().iter().map(|&v| v as f64).sum::<f64>() / (60000.0 * 784.0);
    assert!((mean - 0.1307).abs() < 1e-4, "{mean}");
}
