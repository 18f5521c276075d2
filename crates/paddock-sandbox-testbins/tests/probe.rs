//! The machine must offer every layer (cgroup aside); if not, say so loudly.

#[test]
fn every_layer_is_available_here() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paddock-sandbox-harness")).arg("probe").output().unwrap();
    let report: paddock_sandbox::EnforcementReport = serde_json::from_slice(&out.stdout).unwrap();
    let missing: Vec<String> = report
        .layers
        .iter()
        .filter(|l| l.state != paddock_sandbox::LayerState::Enforced && l.name != "cgroup")
        .map(|l| format!("{}: {:?} ({})", l.name, l.state, l.detail))
        .collect();
    assert!(missing.is_empty(), "THIS KERNEL LACKS SANDBOX LAYERS:\n{}", missing.join("\n"));
    let ll = report.get(paddock_sandbox::Layer::Landlock).unwrap();
    assert!(ll.detail.contains("landlock ABI"), "{ll:?}");
}
