//! The capacity-search decider: a pure state machine that chooses the next probe from the
//! verdicts so far, and says when the answer is known.
//!
//! 1. **Find a bracket.** From the start value, step up while probes pass (down while they fail).
//!    The step is the factor that would bring the worst SLO statistic to its limit if it grew in
//!    proportion to the load (`limit / actual`), and with two probes on one side the secant of
//!    actual / limit through them, aimed 10% past its root: from one probe ×1.5 to ×4, along
//!    a secant ×1.15 to ×8.
//! 2. **Close it.** Between the highest pass and the lowest fail, regula falsi on the same ratio
//!    in its Illinois form: while one end stays put and the other keeps moving, the stuck end's
//!    distance from the limit is halved per step, so a curve that jumps near its limit (a
//!    scheduler's batch filling up) cannot creep toward it one unit at a time. It falls back to
//!    bisection (geometric for rates) whenever two steps in a row did not halve the bracket or
//!    the failing end was stopped for over-saturation (its figures then measure a queue, not the
//!    server). Done when the bracket is within the precision: one unit of concurrency, or a
//!    relative width for rates.
//! 3. **Doubt.** A probe whose verdict the 95% interval does not settle, and whose statistic is
//!    within 25% of its limit, is probed again for twice as long (at most `reprobes` times); after
//!    that it is decided on its point estimate, and the search says so. A probe far from its limit
//!    is decided on its value however few requests it had.
//!
//! The answer is the highest passing value. Contradictions (a pass above a fail) keep the lower,
//! conservative bound and are reported.

use strobe_metrics::SloVerdict;

/// What is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variable {
    /// Open-loop request rate (requests/s).
    Rate,
    /// Closed-loop concurrency (whole numbers).
    Concurrency,
}

impl Variable {
    pub fn name(self) -> &'static str {
        match self {
            Variable::Rate => "rate",
            Variable::Concurrency => "concurrency",
        }
    }
}

/// How close the answer must be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Precision {
    /// Bracket width at most this fraction of its lower end.
    Relative(f64),
    /// Bracket width at most this many units.
    Absolute(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SearchSpec {
    pub variable: Variable,
    pub start: f64,
    pub min: f64,
    pub max: f64,
    pub precision: Precision,
    /// Probes at most, re-probes included.
    pub max_probes: usize,
    /// Re-probes of one inconclusive value at most.
    pub reprobes: u32,
}

/// How a probe's verdict was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    /// The 95% intervals settle every target.
    Confidence,
    /// Unsure, but the statistic is far (≥ 25%) from its limit.
    Margin,
    /// Still unsure after every re-probe: the point estimate decided.
    PointEstimate,
    /// Stopped for over-saturation: over capacity by observation.
    Saturation,
    /// Inconclusive: to be probed again.
    Pending,
}

impl DecidedBy {
    pub fn name(self) -> &'static str {
        match self {
            DecidedBy::Confidence => "confidence",
            DecidedBy::Margin => "margin",
            DecidedBy::PointEstimate => "point estimate",
            DecidedBy::Saturation => "over-saturation",
            DecidedBy::Pending => "inconclusive: probed again",
        }
    }
}

/// What a probe measured, as the decider needs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    pub value: f64,
    /// Combined over the SLOs: any missed → missed; all met → met; else unsure.
    pub verdict: SloVerdict,
    /// The point estimate: every SLO met.
    pub met: bool,
    /// max over the SLOs of ln(actual / limit): ≤ 0 within every limit. NaN when unknown.
    pub margin: f64,
    pub saturated: bool,
}

/// A probe with the decision taken on it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Probe {
    pub measured: Measured,
    /// Passed (counts toward the lower bound).
    pub pass: bool,
    pub decided_by: DecidedBy,
    /// A re-probe of an inconclusive value.
    pub reprobe: bool,
}

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Next {
    /// Probe this value; `longer` is the duration multiplier (re-probes run longer).
    Probe {
        value: f64,
        longer: u32,
    },
    Done(Answer),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answer {
    /// The highest passing value, with the bracket [lo, hi).
    Found { lo: f64, hi: f64 },
    /// Even the minimum fails.
    BelowMin { min: f64 },
    /// The maximum passes.
    AtLeastMax { max: f64 },
    /// The probe budget ran out first; the bracket so far.
    OutOfProbes { lo: Option<f64>, hi: Option<f64> },
}

/// ln(1.25): a statistic this far from its limit is decided on its value.
const CLEAR_MARGIN: f64 = 0.223_143_551_314_209_7;

#[derive(Debug)]
pub struct Decider {
    spec: SearchSpec,
    probes: Vec<Probe>,
    /// Re-probes of the pending value so far.
    pending_reprobes: u32,
    /// Bracket width before the last probe inside it.
    last_width: Option<f64>,
    /// Bracket steps in a row that did not halve it (regula falsi stuck at one end).
    slow_steps: u32,
    /// The end the last decided probe moved (true: the failing end), and how many decided
    /// probes in a row before it moved the same end (the Illinois weight's exponent).
    last_end: Option<bool>,
    same_end: u32,
}

impl Decider {
    pub fn new(spec: SearchSpec) -> Decider {
        Decider {
            spec,
            probes: vec![],
            pending_reprobes: 0,
            last_width: None,
            slow_steps: 0,
            last_end: None,
            same_end: 0,
        }
    }

    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }

    /// A value the search can probe: a whole concurrency, or a rate of three significant digits
    /// (decimal, so labels read `54.4`, not `54.400000000000006`), within [min, max].
    fn round(&self, x: f64) -> f64 {
        let x = x.clamp(self.spec.min, self.spec.max);
        let r = match self.spec.variable {
            Variable::Concurrency => x.round().max(1.0),
            Variable::Rate => {
                let digits = 2 - x.log10().floor() as i32;
                if digits >= 0 {
                    let p = 10f64.powi(digits);
                    (x * p).round() / p
                } else {
                    let p = 10f64.powi(-digits);
                    (x / p).round() * p
                }
            }
        };
        // Rounding must not leave the range.
        if r > self.spec.max {
            self.spec.max
        } else if r < self.spec.min {
            self.spec.min
        } else {
            r
        }
    }

    /// Decided probes only (pending ones are waiting for their re-probe).
    fn decided(&self) -> impl Iterator<Item = &Probe> {
        self.probes
            .iter()
            .filter(|p| p.decided_by != DecidedBy::Pending)
    }

    /// Lowest fail, and highest pass below it.
    pub fn bracket(&self) -> (Option<&Probe>, Option<&Probe>) {
        let hi = self
            .decided()
            .filter(|p| !p.pass)
            .min_by(|a, b| a.measured.value.total_cmp(&b.measured.value));
        let lo = self
            .decided()
            .filter(|p| p.pass && hi.is_none_or(|h| p.measured.value < h.measured.value))
            .max_by(|a, b| a.measured.value.total_cmp(&b.measured.value));
        (lo, hi)
    }

    /// Passes above the lowest fail: the server was not monotone within the noise.
    pub fn contradictions(&self) -> Vec<(f64, f64)> {
        let (_, hi) = self.bracket();
        let Some(hi) = hi else { return vec![] };
        self.decided()
            .filter(|p| p.pass && p.measured.value > hi.measured.value)
            .map(|p| (p.measured.value, hi.measured.value))
            .collect()
    }

    /// The bracket is within the precision, or no value the search can probe lies inside it
    /// (a precision finer than whole concurrencies or three-digit rates).
    fn converged(&self, lo: f64, hi: f64) -> bool {
        let within = match self.spec.precision {
            Precision::Absolute(step) => hi - lo <= step + 1e-9,
            Precision::Relative(r) => hi <= lo * (1.0 + r) + 1e-12,
        };
        let inside = |x: f64| x > lo && x < hi;
        let probeable = match self.spec.variable {
            Variable::Concurrency => hi - lo > 1.0 + 1e-9,
            Variable::Rate => {
                inside(self.round((lo * hi).sqrt())) || inside(self.round((lo + hi) / 2.0))
            }
        };
        within || !probeable
    }

    /// Takes a probe's measurement and decides it (or marks it for a re-probe).
    pub fn record(&mut self, m: Measured) -> Probe {
        let reprobe = self.pending_reprobes > 0;
        let (pass, decided_by) = if m.saturated {
            (false, DecidedBy::Saturation)
        } else {
            match m.verdict {
                SloVerdict::Met => (true, DecidedBy::Confidence),
                SloVerdict::Missed => (false, DecidedBy::Confidence),
                SloVerdict::Unsure if m.margin.is_finite() && m.margin.abs() >= CLEAR_MARGIN => {
                    (m.met, DecidedBy::Margin)
                }
                SloVerdict::Unsure if self.pending_reprobes < self.spec.reprobes => {
                    (m.met, DecidedBy::Pending)
                }
                SloVerdict::Unsure => (m.met, DecidedBy::PointEstimate),
            }
        };
        self.pending_reprobes = if decided_by == DecidedBy::Pending {
            self.pending_reprobes + 1
        } else {
            0
        };
        if decided_by != DecidedBy::Pending {
            let end = !pass;
            if self.last_end == Some(end) {
                self.same_end += 1;
            } else {
                self.last_end = Some(end);
                self.same_end = 0;
            }
        }
        let p = Probe {
            measured: m,
            pass,
            decided_by,
            reprobe,
        };
        self.probes.push(p);
        p
    }

    /// The growth factor from `base` toward the limit, from the margins seen on one side.
    fn factor(&self, side: &[&Probe], up: bool) -> f64 {
        // A secant through two probes is trusted with small and large steps; one probe's ratio
        // is not.
        let (lo_f, hi_f) = if side.len() >= 2 {
            (1.15, 8.0)
        } else {
            (1.5, 4.0)
        };
        let clamp = |f: f64| {
            if up {
                f.clamp(lo_f, hi_f)
            } else {
                f.clamp(1.0 / hi_f, 1.0 / lo_f)
            }
        };
        let finite: Vec<&&Probe> = side
            .iter()
            .filter(|p| p.measured.margin.is_finite())
            .collect();
        match finite.as_slice() {
            [.., a, b] if (b.measured.margin - a.measured.margin).abs() > 1e-9 => {
                // The secant of actual / limit (linear in load for decode-bound metrics).
                let (x1, r1, x2, r2) = (
                    a.measured.value,
                    a.measured.margin.exp(),
                    b.measured.value,
                    b.measured.margin.exp(),
                );
                let root = x2 + (1.0 - r2) * (x2 - x1) / (r2 - r1);
                if root.is_finite() && root > 0.0 {
                    // Aim a little past the root, to bracket it in one probe.
                    clamp(root / x2 * if up { 1.1 } else { 0.9 })
                } else {
                    clamp(if up { 2.0 } else { 0.5 })
                }
            }
            [.., b] => clamp((-b.measured.margin).exp() * if up { 1.1 } else { 0.9 }),
            [] => clamp(if up { 2.0 } else { 0.5 }),
        }
    }

    pub fn next_step(&mut self) -> Next {
        if let Some(p) = self
            .probes
            .last()
            .filter(|p| p.decided_by == DecidedBy::Pending)
        {
            let value = p.measured.value;
            if self.probes.len() < self.spec.max_probes {
                return Next::Probe {
                    value,
                    longer: 1 << self.pending_reprobes.min(4),
                };
            }
        }
        let (lo, hi) = self.bracket();
        let (lo, hi) = (lo.copied(), hi.copied());
        let out_of_probes = self.probes.len() >= self.spec.max_probes;
        let done = |a| Next::Done(a);
        match (lo, hi) {
            (None, None) => {
                if out_of_probes {
                    return done(Answer::OutOfProbes { lo: None, hi: None });
                }
                Next::Probe {
                    value: self.round(self.spec.start),
                    longer: 1,
                }
            }
            (Some(l), None) => {
                let x = l.measured.value;
                if x >= self.spec.max {
                    return done(Answer::AtLeastMax { max: x });
                }
                if out_of_probes {
                    return done(Answer::OutOfProbes {
                        lo: Some(x),
                        hi: None,
                    });
                }
                let passes: Vec<&Probe> = {
                    let mut v: Vec<&Probe> = self.decided().filter(|p| p.pass).collect();
                    v.sort_by(|a, b| a.measured.value.total_cmp(&b.measured.value));
                    v
                };
                let mut next = self.round(x * self.factor(&passes, true));
                if next <= x {
                    next = self.round((x + 1.0).max(x * 1.5));
                }
                Next::Probe {
                    value: next,
                    longer: 1,
                }
            }
            (None, Some(h)) => {
                let x = h.measured.value;
                if x <= self.spec.min {
                    return done(Answer::BelowMin { min: x });
                }
                if out_of_probes {
                    return done(Answer::OutOfProbes {
                        lo: None,
                        hi: Some(x),
                    });
                }
                let fails: Vec<&Probe> = {
                    let mut v: Vec<&Probe> = self
                        .decided()
                        .filter(|p| !p.pass && !p.measured.saturated)
                        .collect();
                    v.sort_by(|a, b| b.measured.value.total_cmp(&a.measured.value));
                    v
                };
                let mut next = self.round(x * self.factor(&fails, false));
                if next >= x {
                    next = self.round(x / 2.0).max(self.spec.min);
                }
                Next::Probe {
                    value: next,
                    longer: 1,
                }
            }
            (Some(l), Some(h)) => {
                let (a, b) = (l.measured.value, h.measured.value);
                if self.converged(a, b) {
                    return done(Answer::Found { lo: a, hi: b });
                }
                if out_of_probes {
                    return done(Answer::OutOfProbes {
                        lo: Some(a),
                        hi: Some(b),
                    });
                }
                let width = b - a;
                let bisect = match self.spec.variable {
                    Variable::Rate => (a * b).sqrt(),
                    Variable::Concurrency => (a + b) / 2.0,
                };
                if let Some(w) = self.last_width {
                    self.slow_steps = if width <= w / 2.0 + 1e-9 {
                        0
                    } else {
                        self.slow_steps + 1
                    };
                }
                let (ma, mb) = (l.measured.margin, h.measured.margin);
                let interpolate = self.slow_steps < 2
                    && !h.measured.saturated
                    && ma.is_finite()
                    && mb.is_finite()
                    && mb > ma;
                let mut x = if interpolate {
                    // Distances from the limit: below it at the passing end, above at the
                    // failing one; the end left behind is weighted down (Illinois).
                    let (mut fa, mut fb) = (ma.exp() - 1.0, mb.exp() - 1.0);
                    let weight = 0.5f64.powi(self.same_end.min(30) as i32);
                    match self.last_end {
                        Some(true) => fa *= weight,
                        Some(false) => fb *= weight,
                        None => {}
                    }
                    let t = -fa / (fb - fa);
                    let t = if t.is_finite() {
                        t.clamp(0.1, 0.9)
                    } else {
                        0.5
                    };
                    a + t * width
                } else {
                    bisect
                };
                self.last_width = Some(width);
                x = self.round(x);
                // Strictly inside the bracket.
                let unit = match self.spec.variable {
                    Variable::Concurrency => 1.0,
                    Variable::Rate => 0.0,
                };
                if x <= a || x >= b {
                    x = self.round(bisect);
                }
                if unit > 0.0 && (x <= a || x >= b) {
                    x = a + unit;
                }
                Next::Probe {
                    value: x,
                    longer: 1,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target whose statistic is `base + k·x`, limit `limit`: the capacity is (limit − base)/k.
    fn run_search(
        spec: SearchSpec,
        stat: impl Fn(f64, usize) -> (f64, SloVerdict),
    ) -> (Answer, usize) {
        let limit = 100.0;
        let mut d = Decider::new(spec);
        loop {
            match d.next_step() {
                Next::Done(a) => return (a, d.probes().len()),
                Next::Probe { value, .. } => {
                    let (actual, verdict) = stat(value, d.probes().len());
                    d.record(Measured {
                        value,
                        verdict,
                        met: actual <= limit,
                        margin: (actual / limit).ln(),
                        saturated: false,
                    });
                }
            }
        }
    }

    fn certain(actual: f64) -> SloVerdict {
        if actual <= 100.0 {
            SloVerdict::Met
        } else {
            SloVerdict::Missed
        }
    }

    #[test]
    fn concurrency_lands_on_the_limit_in_few_probes() {
        for (base, k) in [(20.0f64, 2.0f64), (10.0, 0.7), (50.0, 9.0), (5.0, 0.05)] {
            let limit_c = ((100.0 - base) / k).floor();
            let spec = SearchSpec {
                variable: Variable::Concurrency,
                start: 1.0,
                min: 1.0,
                max: 4096.0,
                precision: Precision::Absolute(1.0),
                max_probes: 30,
                reprobes: 2,
            };
            let (a, n) = run_search(spec, |c, _| {
                let v = base + k * c;
                (v, certain(v))
            });
            match a {
                Answer::Found { lo, hi } => {
                    assert_eq!(lo, limit_c, "base {base} k {k}: {a:?}");
                    assert_eq!(hi, limit_c + 1.0);
                }
                other => panic!("{other:?}"),
            }
            eprintln!("limit {limit_c}: {n} probes");
            // A 10-point grid over 1..4096 would not even reach a precision of 400.
            assert!(
                n <= if limit_c > 1000.0 { 10 } else { 8 },
                "base {base} k {k}: {n} probes"
            );
        }
    }

    #[test]
    fn a_rate_search_meets_its_relative_precision() {
        // Latency that blows up near 40 req/s (a queue): 20 / (1 − r/40) ms, limit 100 → r* = 32.
        let spec = SearchSpec {
            variable: Variable::Rate,
            start: 1.0,
            min: 0.1,
            max: 10_000.0,
            precision: Precision::Relative(0.05),
            max_probes: 30,
            reprobes: 2,
        };
        let (a, n) = run_search(spec, |r, _| {
            let v = if r >= 41.0 {
                1e6
            } else {
                20.0 / (1.0 - r / 41.0)
            };
            (v, certain(v))
        });
        let Answer::Found { lo, hi } = a else {
            panic!("{a:?}")
        };
        // 20 / (1 − r/41) = 100 at r = 32.8.
        assert!(lo <= 32.8 && hi > 32.8 && hi <= lo * 1.05 + 1e-9, "{a:?}");
        assert!(n <= 10, "{n} probes");
    }

    #[test]
    fn an_unsure_probe_near_the_limit_is_probed_again_and_noise_cannot_flip_it() {
        // Near the limit the first look at every value is unsure (and its point estimate wrong);
        // the re-probe is confident and right.
        let spec = SearchSpec {
            variable: Variable::Concurrency,
            start: 4.0,
            min: 1.0,
            max: 100.0,
            precision: Precision::Absolute(1.0),
            max_probes: 40,
            reprobes: 2,
        };
        let mut seen = std::collections::HashMap::new();
        let mut d = Decider::new(spec);
        let answer = loop {
            match d.next_step() {
                Next::Done(a) => break a,
                Next::Probe { value, longer } => {
                    let actual = 20.0 + 4.0 * value; // limit 100 → c* = 20
                    let first = *seen.entry(value as u64).or_insert(0u32) == 0;
                    *seen.get_mut(&(value as u64)).unwrap() += 1;
                    let near = (actual / 100.0).ln().abs() < 0.2;
                    let (verdict, met) = if near && first {
                        (SloVerdict::Unsure, actual > 100.0) // a noisy, wrong first look
                    } else {
                        (certain(actual), actual <= 100.0)
                    };
                    if !first {
                        assert!(longer >= 2, "a re-probe runs longer");
                    }
                    d.record(Measured {
                        value,
                        verdict,
                        met,
                        margin: (actual / 100.0).ln(),
                        saturated: false,
                    });
                }
            }
        };
        assert_eq!(answer, Answer::Found { lo: 20.0, hi: 21.0 });
        assert!(d.probes().iter().any(|p| p.reprobe));
    }

    #[test]
    fn every_probe_is_a_probeable_value_and_fine_precisions_end() {
        // Capacity 3 with a slow start: the fallback step must still give whole concurrencies.
        let spec = SearchSpec {
            variable: Variable::Concurrency,
            start: 1.0,
            min: 1.0,
            max: 64.0,
            precision: Precision::Relative(0.05), // finer than whole numbers at 6
            max_probes: 30,
            reprobes: 1,
        };
        let mut d = Decider::new(spec);
        let answer = loop {
            match d.next_step() {
                Next::Done(a) => break a,
                Next::Probe { value, .. } => {
                    assert_eq!(value, value.round(), "{value}");
                    let actual = 100.0 * (0.25 + 0.24 * value);
                    d.record(Measured {
                        value,
                        verdict: certain(actual),
                        met: actual <= 100.0,
                        margin: (actual / 100.0).ln(),
                        saturated: false,
                    });
                }
            }
        };
        assert_eq!(answer, Answer::Found { lo: 3.0, hi: 4.0 });
        assert!(d.probes().len() < 10);
        // A rate precision finer than three digits ends as soon as nothing fits in between.
        let spec = SearchSpec {
            variable: Variable::Rate,
            start: 1.0,
            min: 0.1,
            max: 12_355.0,
            precision: Precision::Relative(0.001),
            max_probes: 40,
            reprobes: 1,
        };
        let (a, n) = run_search(spec.clone(), |r, _| {
            let v = r / 159.3 * 100.0;
            (v, certain(v))
        });
        assert!(
            matches!(a, Answer::Found { lo, hi } if lo <= 159.3 && hi > 159.3),
            "{a:?}"
        );
        assert!(n < 20, "{n}");
        // Values stay decimal and within the maximum.
        let (a, _) = run_search(spec, |_, _| (1.0, SloVerdict::Met));
        assert_eq!(a, Answer::AtLeastMax { max: 12_355.0 });
    }

    #[test]
    fn a_curve_that_jumps_just_past_its_limit_is_not_crept_up_on() {
        // Seen on the CPU tier: TPOT flat to 9 users, then a jump (the engine's batch full) to
        // just above the limit, rising slowly after. Plain regula falsi kept the passing end
        // and moved the failing one down a unit at a time (28, 23, 15, 12, 11, 10, 9).
        let spec = SearchSpec {
            variable: Variable::Concurrency,
            start: 1.0,
            min: 1.0,
            max: 32.0,
            precision: Precision::Absolute(1.0),
            max_probes: 30,
            reprobes: 2,
        };
        let tpot = |c: f64| {
            if c <= 9.0 {
                36.0 + 1.5 * c
            } else {
                66.0 + 0.3 * (c - 10.0)
            }
        };
        let (a, n) = run_search(spec, |c, _| {
            let v = tpot(c) / 64.0 * 100.0;
            (v, certain(v))
        });
        assert_eq!(a, Answer::Found { lo: 9.0, hi: 10.0 });
        eprintln!("jump at the limit: {n} probes");
        assert!(n <= 9, "{n} probes");
    }

    #[test]
    fn edges_and_saturation() {
        let spec = SearchSpec {
            variable: Variable::Concurrency,
            start: 8.0,
            min: 1.0,
            max: 64.0,
            precision: Precision::Absolute(1.0),
            max_probes: 20,
            reprobes: 1,
        };
        let (a, _) = run_search(spec.clone(), |_, _| (1000.0, SloVerdict::Missed));
        assert_eq!(a, Answer::BelowMin { min: 1.0 });
        let (a, _) = run_search(spec.clone(), |_, _| (1.0, SloVerdict::Met));
        assert_eq!(a, Answer::AtLeastMax { max: 64.0 });
        // A saturated probe counts as a fail and is never interpolated from.
        let mut d = Decider::new(spec);
        let _ = d.next_step();
        let p = d.record(Measured {
            value: 8.0,
            verdict: SloVerdict::Met,
            met: true,
            margin: -1.0,
            saturated: true,
        });
        assert!(!p.pass && p.decided_by == DecidedBy::Saturation);
    }
}
