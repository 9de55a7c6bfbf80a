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
/// error plot draws the ODE solvers and, marked strong, Euler–Maruyama on its Brownian tree;
/// the distribution plots draw every sampler.
#[test]
fn error_plots_leave_out_stochastic_samplers_which_distribution_plots_keep() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, "name = \"p\"\nmodels = [\"ring2d\"]\nspacings = [\"logsnr\"]\nnfe = [5, 10, 20]\nsamples = 200\nmetrics = [\"error\", \"frechet\"]\n[[solvers]]\nname = \"ddim\"\n[[solvers]]\nname = \"ddpm\"\n[[solvers]]\nname = \"euler-maruyama\"\nbrownian = \"tree\"\n").unwrap();
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
    assert!(error.contains("euler-maruyama") && error.contains("(strong)"));
    assert!(
        frechet.contains("ddim") && frechet.contains("ddpm"),
        "frechet plot"
    );
}

/// `pfode plot SAMPLES.npy --model M`: 2-D samples over the data density (PNG and SVG),
/// digits as an image grid; without a model, or for a model it cannot draw, an error and
/// no file.
#[test]
fn plot_draws_one_sample_file_over_its_density_or_as_digits() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_pfode");
    let run = |args: &[&str]| Command::new(bin).args(args).output().unwrap();
    let digits = concat!(env!("CARGO_MANIFEST_DIR"), "/models/digits.safetensors");
    let (ring, images, wide) = (
        dir.path().join("ring.npy"),
        dir.path().join("digits.npy"),
        dir.path().join("wide.npy"),
    );
    for (model, out) in [("ring2d", &ring), (digits, &images), ("mix16d", &wide)] {
        let o = run(&[
            "sample",
            "--model",
            model,
            "--solver",
            "ddim",
            "--steps",
            "10",
            "--n",
            "64",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = run(&["plot", ring.to_str().unwrap(), "--model", "ring2d"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(dir.path().join("ring.svg")).unwrap();
    assert!(svg.contains("64 samples of ring2d over the density of ring2d"));
    assert!(std::fs::read(dir.path().join("ring.png")).unwrap().len() > 10_000);
    let o = run(&["plot", images.to_str().unwrap(), "--model", digits]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        &std::fs::read(dir.path().join("digits.png")).unwrap()[1..4],
        b"PNG"
    );
    for (args, words) in [
        (
            vec!["plot", ring.to_str().unwrap()],
            "a sample file needs the model",
        ),
        (
            vec!["plot", wide.to_str().unwrap(), "--model", "mix16d"],
            "2-D mixture",
        ),
        (
            vec!["plot", ring.to_str().unwrap(), "--model", "mix16d"],
            "[N, 16]",
        ),
    ] {
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(words),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.path().join("wide.png").exists() && !dir.path().join("wide.svg").exists());
}

/// A figure that cannot be drawn (every Fréchet value 0, on a log axis) fails naming its
/// file, and leaves neither its PNG nor its SVG behind.
#[test]
fn a_figure_that_cannot_be_drawn_fails_naming_it_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, "name = \"p\"\nmodels = [\"ring2d\"]\nspacings = [\"logsnr\"]\nnfe = [5, 10]\nsamples = 100\nmetrics = [\"error\", \"frechet\"]\n[[solvers]]\nname = \"ddim\"\n").unwrap();
    let out = dir.path().join("res");
    let bin = env!("CARGO_BIN_EXE_pfode");
    let o = Command::new(bin)
        .args(["sweep", spec.to_str().unwrap(), "--out"])
        .arg(&out)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = out.join("results.csv");
    let mut text = String::new();
    for (i, line) in std::fs::read_to_string(&table).unwrap().lines().enumerate() {
        let mut cols: Vec<String> = line.split(',').map(str::to_string).collect();
        let n = cols.len();
        if i > 0 && cols[n - 3] == "frechet" {
            cols[n - 2] = "0".into();
        }
        text.push_str(&cols.join(","));
        text.push('\n');
    }
    assert!(text.contains(",frechet,0,"), "{text}");
    std::fs::write(&table, text).unwrap();
    let o = Command::new(bin).arg("plot").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("frechet_vs_nfe_ring2d_logsnr") && err.contains("no plottable points"),
        "{err}"
    );
    let plots = out.join("plots");
    for ext in ["png", "svg"] {
        assert!(!plots
            .join(format!("frechet_vs_nfe_ring2d_logsnr.{ext}"))
            .exists());
    }
}
