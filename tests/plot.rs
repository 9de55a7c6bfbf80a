//! `pfode plot`: every figure is written as PNG and SVG from a results folder alone.

use std::process::Command;

#[test]
fn plot_writes_png_and_svg_for_every_figure_from_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, "name = \"p\"\nmodels = [\"ring2d\"]\nspacings = [\"logsnr\"]\nnfe = [5, 10, 20]\nsamples = 200\n[[solvers]]\nname = \"ddim\"\n[[solvers]]\nname = \"unipc\"\n").unwrap();
    let out = dir.path().join("res");
    let bin = env!("CARGO_BIN_EXE_pfode");
    let o = Command::new(bin)
        .args([
            "sweep",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The plots need only the folder: the spec is gone, the cache too.
    std::fs::remove_file(&spec).unwrap();
    std::fs::remove_dir_all(out.join("cache")).unwrap();
    let o = Command::new(bin)
        .args(["plot", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in [
        "error_vs_nfe_ring2d_logsnr",
        "frechet_vs_nfe_ring2d_logsnr",
        "nll_vs_nfe_ring2d_logsnr",
        "wall_vs_nfe_ring2d",
        "trajectories_ring2d",
        "samples_ring2d",
    ] {
        let png = std::fs::read(out.join("plots").join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{name}");
        assert!(png.len() > 10_000, "{name}: {} bytes", png.len());
        let svg = std::fs::read_to_string(out.join("plots").join(format!("{name}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("ring2d"), "{name}");
    }
    let o = Command::new(bin)
        .args(["plot", dir.path().join("nothing").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("results.csv"));
}

/// A stochastic sampler's distance to the ODE reference is no discretisation error: the
/// error plot draws the ODE solvers only, the distribution plots draw every sampler.
#[test]
fn error_plots_leave_out_stochastic_samplers_which_distribution_plots_keep() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, "name = \"p\"\nmodels = [\"ring2d\"]\nspacings = [\"logsnr\"]\nnfe = [5, 10, 20]\nsamples = 200\nmetrics = [\"error\", \"frechet\"]\n[[solvers]]\nname = \"ddim\"\n[[solvers]]\nname = \"ddpm\"\n").unwrap();
    let out = dir.path().join("res");
    let bin = env!("CARGO_BIN_EXE_pfode");
    for args in [
        vec![
            "sweep",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ],
        vec!["plot", out.to_str().unwrap()],
    ] {
        let o = Command::new(bin).args(&args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let svg = |name: &str| {
        std::fs::read_to_string(
            out.join("plots")
                .join(format!("{name}_vs_nfe_ring2d_logsnr.svg")),
        )
        .unwrap()
    };
    let (error, frechet) = (svg("error"), svg("frechet"));
    assert!(
        error.contains("ddim") && !error.contains("ddpm"),
        "error plot"
    );
    assert!(error.contains("ODE solvers"));
    assert!(
        frechet.contains("ddim") && frechet.contains("ddpm"),
        "frechet plot"
    );
}
