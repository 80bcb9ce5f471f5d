//! The MNIST ensemble committed in `models/mnist-ensemble` (nets of the
//! kernel's 45-epoch recipe, see its README.md): every member recomputes,
//! on the bundled 10,000 test images, the accuracy recorded when it was
//! trained, and the ensemble is at least as accurate as its best member's
//! recorded floor.

use convnet_data::Mnist;
use convnet_lab::ensemble::{evaluate_members, load_members, member_dir, read_record};
use std::path::Path;

#[test]
fn committed_ensemble_recomputes_its_recorded_accuracy_on_the_bundled_test_set() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-ensemble");
    let mut models = load_members(&dir).expect("at least one finished member is committed");
    let test = Mnist::load(&Mnist::bundled_dir()).unwrap().test;
    let r = evaluate_members(&mut models, &test, 1).unwrap();
    for (i, acc) in r.members.iter().enumerate() {
        let record = read_record(&member_dir(&dir, i)).expect("member.json");
        assert_eq!(record.epochs, 45, "net {}", i + 1);
        assert!(
            (acc - record.test_accuracy).abs() < 1.5e-4,
            "net {}: {acc} now, {} recorded",
            i + 1,
            record.test_accuracy
        );
        assert!(*acc >= 0.995, "net {}: {acc}", i + 1);
    }
    assert!(
        r.ensemble >= 0.995,
        "ensemble of {}: {}",
        models.len(),
        r.ensemble
    );
    eprintln!(
        "{} committed nets: members {:?}, ensemble {:.4}",
        models.len(),
        r.members,
        r.ensemble
    );
}
