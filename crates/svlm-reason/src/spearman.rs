//! Spearman rank correlation with average ranks for ties (the `scipy.stats.spearmanr` definition: Pearson
//! correlation of the rank vectors).

/// 1-based ranks; tied values share the mean of the ranks they span ([10, 20, 20, 30] -> [1, 2.5, 2.5, 4]).
/// NaN values sort last (callers drop them first).
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Spearman's rho between `x` and `y`: Pearson's r of their average ranks. `None` when the lengths differ, fewer
/// than two pairs are given, a value is not finite, or either side is constant (rho is undefined there).
pub fn spearman_rho(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 || x.iter().chain(y).any(|v| !v.is_finite()) {
        return None;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 20.0, 30.0]),
            vec![1.0, 2.5, 2.5, 4.0]
        );
        assert_eq!(average_ranks(&[3.0, 1.0, 2.0]), vec![3.0, 1.0, 2.0]);
        assert_eq!(average_ranks(&[5.0, 5.0, 5.0]), vec![2.0, 2.0, 2.0]);
        assert_eq!(average_ranks(&[]), Vec::<f64>::new());
    }

    #[test]
    fn perfect_monotonic_is_plus_or_minus_one() {
        let x = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(spearman_rho(&x, &[0.5, 0.4, 0.3, 0.2, 0.01]), Some(-1.0));
        // Monotonic but not linear: rho is still exactly 1.
        assert_eq!(spearman_rho(&x, &[1.0, 8.0, 27.0, 64.0, 125.0]), Some(1.0));
    }

    #[test]
    fn hand_computed_without_ties() {
        // ranks y = [2, 1, 4, 3, 5]; d = [-1, 1, -1, 1, 0]; sum d^2 = 4; rho = 1 - 6*4/(5*24) = 0.8.
        let rho = spearman_rho(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 1.0, 4.0, 3.0, 5.0]).unwrap();
        assert!((rho - 0.8).abs() < 1e-12, "{rho}");
    }

    #[test]
    fn hand_computed_with_ties() {
        // x ranks [1,2,3,4]; y = [1, 2, 2, 3] -> ranks [1, 2.5, 2.5, 4].
        // centred x: [-1.5,-0.5,0.5,1.5]; centred y: [-1.5,0,0,1.5]; sxy = 4.5; sxx = 5; syy = 4.5.
        // rho = 4.5 / sqrt(5 * 4.5) = 0.9486832980505138 (scipy.stats.spearmanr gives the same).
        let rho = spearman_rho(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 2.0, 3.0]).unwrap();
        assert!((rho - 0.948_683_298_050_513_8).abs() < 1e-12, "{rho}");
    }

    #[test]
    fn undefined_cases() {
        assert_eq!(spearman_rho(&[1.0], &[2.0]), None);
        assert_eq!(spearman_rho(&[1.0, 2.0], &[3.0]), None);
        assert_eq!(spearman_rho(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]), None);
        assert_eq!(spearman_rho(&[1.0, f64::NAN], &[1.0, 2.0]), None);
    }
}
