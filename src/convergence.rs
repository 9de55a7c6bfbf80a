//! Convergence-order fitting, shared by every solver's order test.

/// Observed order: minus the least-squares slope of `log error` against `log steps`.
pub fn fitted_order(steps: &[usize], errors: &[f64]) -> f64 {
    assert_eq!(steps.len(), errors.len());
    let xs: Vec<f64> = steps.iter().map(|&n| (n as f64).ln()).collect();
    let ys: Vec<f64> = errors.iter().map(|e| e.ln()).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    -sxy / sxx
}

#[cfg(test)]
mod tests {
    #[test]
    fn recovers_the_exponent_of_a_power_law() {
        let steps = [10, 20, 40, 80];
        let errs: Vec<f64> = steps.iter().map(|&n| 3.0 * (n as f64).powf(-2.5)).collect();
        assert!((super::fitted_order(&steps, &errs) - 2.5).abs() < 1e-12);
    }
}
