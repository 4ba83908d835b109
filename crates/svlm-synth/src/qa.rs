//! Question/answer templates: 28 qualitative types (7 relation pairs, each as a yes/no predicate and as a
//! "which" choice, both polarities) and 24 quantitative types (lengths, clock directions, angles).
//!
//! Every emitted pair carries its truth (`record::Truth`) computed from the scene graph, never from the text:
//! lengths in metres unrounded, predicates outside the ambiguity margin only.

use rand::Rng;
use rand::seq::SliceRandom;

use crate::phrase;
use crate::record::{QuestionKind, SpatialQa, Truth};
use crate::scene::{SceneGraph, SkipCounts, count_skip};

/// Thresholds that decide which questions are unambiguous enough to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct QaConfig {
    /// Questions per image (split evenly between qualitative and quantitative when both pools allow).
    pub qa_per_image: usize,
    /// Positional predicates need a centre difference of at least `margin` x the mean object size along that axis.
    pub margin: f64,
    /// Taller/wider need a difference of at least `size_margin` x the larger of the two sizes.
    pub size_margin: f64,
    /// Bigger/smaller need a box-volume ratio of at least this.
    pub volume_ratio: f64,
    /// Clock directions closer than this to a half-hour boundary (degrees) are skipped.
    pub clock_boundary_deg: f64,
    /// Lengths below this (metres) are not asked about.
    pub min_length: f64,
    /// Only these question types (names from [`question_types`]); `None` asks every type.
    pub kinds: Option<Vec<String>>,
    /// How quantitative answers write lengths (units, hedges, ranges, words).
    pub number_style: svlm_answers::NumberStyle,
    /// Answers without a sentence around them ("Yes.", "The red cube.", "1.2 meters.").
    pub short_answers: bool,
    /// Yes/no and "which" answers reason before they decide: the two objects listed by short keys along the
    /// relation's axis, each tagged with its end, then the verdict ([`phrase::reasoned_predicate`],
    /// [`phrase::reasoned_choice`]). Overrides `short_answers` for those types; quantities keep their style.
    pub reasoned_answers: bool,
    /// Every question wording drawn at random (`Varied`), or one per question type (`Plain`).
    pub phrasing: phrase::Phrasing,
    /// Share of each image's questions that are qualitative (predicates and choices); the rest are quantities.
    /// When one family runs short, the other fills the remaining slots.
    pub qualitative_share: f64,
}

impl Default for QaConfig {
    fn default() -> Self {
        QaConfig {
            qa_per_image: 32,
            margin: 0.5,
            size_margin: 0.2,
            volume_ratio: 1.5,
            clock_boundary_deg: 5.0,
            min_length: 0.02,
            kinds: None,
            number_style: svlm_answers::NumberStyle::default(),
            short_answers: false,
            reasoned_answers: false,
            phrasing: phrase::Phrasing::Varied,
            qualitative_share: 0.5,
        }
    }
}

/// Question settings [`QaConfig::validate`] refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QaConfigError {
    #[error("qualitative_share {0} must be within [0, 1]")]
    QualitativeShare(f64),
    #[error("unknown question types {unknown:?}; known: {known}")]
    UnknownTypes { unknown: Vec<String>, known: String },
    #[error("the question type list is empty")]
    NoTypes,
}

impl QaConfig {
    /// Rejects type names that [`question_types`] does not know, listing them.
    pub fn validate(&self) -> Result<(), QaConfigError> {
        if !(0.0..=1.0).contains(&self.qualitative_share) {
            return Err(QaConfigError::QualitativeShare(self.qualitative_share));
        }
        if let Some(kinds) = &self.kinds {
            let known = question_types();
            let unknown: Vec<String> = kinds
                .iter()
                .filter(|k| !known.contains(&k.as_str()))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(QaConfigError::UnknownTypes {
                    unknown,
                    known: known.join(", "),
                });
            }
            if kinds.is_empty() {
                return Err(QaConfigError::NoTypes);
            }
        }
        Ok(())
    }

    fn asks(&self, kind: &str) -> bool {
        self.kinds
            .as_ref()
            .is_none_or(|kinds| kinds.iter().any(|k| k == kind))
    }
}

/// A binary spatial relation; each has an opposite (`Left` <-> `Right` ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    Left,
    Right,
    Above,
    Below,
    Front,
    Behind,
    Closer,
    Farther,
    Taller,
    Shorter,
    Wider,
    Thinner,
    Bigger,
    Smaller,
}

impl Relation {
    pub const ALL: [Relation; 14] = [
        Relation::Left,
        Relation::Right,
        Relation::Above,
        Relation::Below,
        Relation::Front,
        Relation::Behind,
        Relation::Closer,
        Relation::Farther,
        Relation::Taller,
        Relation::Shorter,
        Relation::Wider,
        Relation::Thinner,
        Relation::Bigger,
        Relation::Smaller,
    ];
    /// One relation of each opposite pair; the other is `opposite()`.
    pub const PRIMARY: [Relation; 7] = [
        Relation::Left,
        Relation::Above,
        Relation::Front,
        Relation::Closer,
        Relation::Taller,
        Relation::Wider,
        Relation::Bigger,
    ];

    pub fn opposite(self) -> Relation {
        use Relation::*;
        match self {
            Left => Right,
            Right => Left,
            Above => Below,
            Below => Above,
            Front => Behind,
            Behind => Front,
            Closer => Farther,
            Farther => Closer,
            Taller => Shorter,
            Shorter => Taller,
            Wider => Thinner,
            Thinner => Wider,
            Bigger => Smaller,
            Smaller => Bigger,
        }
    }

    fn index(self) -> usize {
        Relation::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }

    /// The one word for the end of the axis this relation points to: "left" for Left, "front" for Front. A
    /// reasoned answer tags each listed object with its end and names the relation asked, so the verdict compares
    /// two words.
    pub fn word(self) -> &'static str {
        RELATION_WORDS[self.index()]
    }

    pub fn predicate_kind(self) -> &'static str {
        PREDICATE_KINDS[self.index()]
    }

    pub fn choice_kind(self) -> &'static str {
        CHOICE_KINDS[self.index()]
    }

    /// Skip reason when the pair is too close to call.
    fn ambiguity_reason(self) -> &'static str {
        use Relation::*;
        match self {
            Left | Right => "ambiguous_left_right",
            Above | Below => "ambiguous_above_below",
            Front | Behind => "ambiguous_front_behind",
            Closer | Farther => "ambiguous_camera_distance",
            Taller | Shorter => "ambiguous_height",
            Wider | Thinner => "ambiguous_width",
            Bigger | Smaller => "ambiguous_size",
        }
    }

    /// Whether `a REL b` holds in `g`: `None` when the difference is within the ambiguity margin.
    pub fn holds(self, g: &SceneGraph, a: usize, b: usize, cfg: &QaConfig) -> Option<bool> {
        use Relation::*;
        let (oa, ob) = (&g.objects[a], &g.objects[b]);
        let (ca, cb) = (oa.center(), ob.center());
        // (evidence that a REL b, evidence that b REL a, margin)
        let (pos, neg, m) = match self {
            Left | Right => {
                let s = cb.x - ca.x;
                let m = cfg.margin * 0.5 * (oa.width() + ob.width());
                if self == Left { (s, -s, m) } else { (-s, s, m) }
            }
            Front | Behind => {
                let s = cb.y - ca.y;
                let m = cfg.margin * 0.5 * (oa.depth() + ob.depth());
                if self == Front {
                    (s, -s, m)
                } else {
                    (-s, s, m)
                }
            }
            Above | Below => {
                // Above = a's centre is over b's top and a's bottom is over b's centre: a tall object
                // standing beside a short one is neither above nor below it.
                let ab = (ca.z - ob.top()).min(oa.bottom() - cb.z);
                let ba = (cb.z - oa.top()).min(ob.bottom() - ca.z);
                // Stacked objects give min(h_a, h_b) / 2 here, so the margin scales with the smaller height.
                let m = cfg.margin * 0.5 * oa.height().min(ob.height());
                if self == Above {
                    (ab, ba, m)
                } else {
                    (ba, ab, m)
                }
            }
            Closer | Farther => {
                let s = (cb - g.camera).norm() - (ca - g.camera).norm();
                let size = |o: &crate::scene::SceneObject| o.width().max(o.depth());
                let m = cfg.margin * 0.5 * (size(oa) + size(ob));
                if self == Closer {
                    (s, -s, m)
                } else {
                    (-s, s, m)
                }
            }
            Taller | Shorter => {
                let s = oa.height() - ob.height();
                let m = cfg.size_margin * oa.height().max(ob.height());
                if self == Taller {
                    (s, -s, m)
                } else {
                    (-s, s, m)
                }
            }
            Wider | Thinner => {
                let s = oa.width() - ob.width();
                let m = cfg.size_margin * oa.width().max(ob.width());
                if self == Wider {
                    (s, -s, m)
                } else {
                    (-s, s, m)
                }
            }
            Bigger | Smaller => {
                let (va, vb) = (oa.volume(), ob.volume());
                if !(va > 0.0 && vb > 0.0) {
                    return None;
                }
                let s = (va / vb).ln();
                let m = cfg.volume_ratio.ln();
                if self == Bigger {
                    (s, -s, m)
                } else {
                    (-s, s, m)
                }
            }
        };
        if pos >= m && pos > 0.0 {
            Some(true)
        } else if neg >= m && neg > 0.0 {
            Some(false)
        } else {
            None
        }
    }
}

/// Each relation's word, in the order of `Relation::ALL`, and the question types built from it: the word names
/// the relation in its types ("left_predicate", "left_choice") and in reasoned answers ("red: left").
macro_rules! relation_names {
    ($($word:literal),* $(,)?) => {
        const RELATION_WORDS: [&str; 14] = [$($word),*];
        const PREDICATE_KINDS: [&str; 14] = [$(concat!($word, "_predicate")),*];
        const CHOICE_KINDS: [&str; 14] = [$(concat!($word, "_choice")),*];
    };
}

relation_names!(
    "left", "right", "above", "below", "front", "behind", "closer", "farther", "taller", "shorter",
    "wider", "thinner", "bigger", "smaller",
);

/// A measured quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantity {
    /// Centre-to-centre distance.
    Distance,
    /// Closest-surface distance.
    Gap,
    HorizontalDistance,
    VerticalDistance,
    Width,
    Height,
    DepthExtent,
    CameraDistance,
    LeftOffset,
    RightOffset,
    AboveOffset,
    BelowOffset,
    FrontOffset,
    BehindOffset,
    /// Direction from a to b as a clock position, 12 = away from the camera.
    ClockDirection,
    /// Direction of a from the camera as a clock position, 12 = straight ahead.
    CameraClock,
    /// Angle above the horizontal of b's centre seen from a's centre.
    ElevationAngle,
    /// Elevation of a's centre seen from the camera, degrees (negative: below the horizontal). Only asked for
    /// objects below the camera.
    CameraLookDown,
    HeightDifference,
    WidthDifference,
    TopHeight,
    BottomHeight,
    CameraHorizontalDistance,
    MaxDimension,
}

impl Quantity {
    pub const ALL: [Quantity; 24] = [
        Quantity::Distance,
        Quantity::Gap,
        Quantity::HorizontalDistance,
        Quantity::VerticalDistance,
        Quantity::Width,
        Quantity::Height,
        Quantity::DepthExtent,
        Quantity::CameraDistance,
        Quantity::LeftOffset,
        Quantity::RightOffset,
        Quantity::AboveOffset,
        Quantity::BelowOffset,
        Quantity::FrontOffset,
        Quantity::BehindOffset,
        Quantity::ClockDirection,
        Quantity::CameraClock,
        Quantity::ElevationAngle,
        Quantity::CameraLookDown,
        Quantity::HeightDifference,
        Quantity::WidthDifference,
        Quantity::TopHeight,
        Quantity::BottomHeight,
        Quantity::CameraHorizontalDistance,
        Quantity::MaxDimension,
    ];

    pub fn kind(self) -> &'static str {
        use Quantity::*;
        match self {
            Distance => "distance",
            Gap => "gap",
            HorizontalDistance => "horizontal_distance",
            VerticalDistance => "vertical_distance",
            Width => "width",
            Height => "height",
            DepthExtent => "depth_extent",
            CameraDistance => "camera_distance",
            LeftOffset => "left_offset",
            RightOffset => "right_offset",
            AboveOffset => "above_offset",
            BelowOffset => "below_offset",
            FrontOffset => "front_offset",
            BehindOffset => "behind_offset",
            ClockDirection => "clock_direction",
            CameraClock => "camera_clock",
            ElevationAngle => "elevation_angle",
            CameraLookDown => "camera_look_down",
            HeightDifference => "height_difference",
            WidthDifference => "width_difference",
            TopHeight => "top_height",
            BottomHeight => "bottom_height",
            CameraHorizontalDistance => "camera_horizontal_distance",
            MaxDimension => "max_dimension",
        }
    }

    /// Number of objects the question names.
    pub fn arity(self) -> usize {
        use Quantity::*;
        match self {
            Width
            | Height
            | DepthExtent
            | CameraDistance
            | CameraClock
            | CameraLookDown
            | TopHeight
            | BottomHeight
            | CameraHorizontalDistance
            | MaxDimension => 1,
            _ => 2,
        }
    }

    /// Whether the question is asked about (a, b) in both orders (asymmetric) or once per unordered pair.
    fn ordered(self) -> bool {
        !matches!(
            self,
            Quantity::Distance
                | Quantity::Gap
                | Quantity::HorizontalDistance
                | Quantity::VerticalDistance
        )
    }

    /// The relation that must hold (a REL b) for the offset/difference questions to make sense.
    fn requires(self) -> Option<Relation> {
        use Quantity::*;
        match self {
            LeftOffset => Some(Relation::Left),
            RightOffset => Some(Relation::Right),
            AboveOffset => Some(Relation::Above),
            BelowOffset => Some(Relation::Below),
            FrontOffset => Some(Relation::Front),
            BehindOffset => Some(Relation::Behind),
            ElevationAngle => Some(Relation::Below),
            HeightDifference => Some(Relation::Taller),
            WidthDifference => Some(Relation::Wider),
            _ => None,
        }
    }

    /// The truth for (a, b) (b ignored for unary quantities), or the reason to skip it.
    pub fn value(
        self,
        g: &SceneGraph,
        a: usize,
        b: usize,
        cfg: &QaConfig,
    ) -> Result<Truth, &'static str> {
        use Quantity::*;
        let oa = &g.objects[a];
        let ca = oa.center();
        let length = |m: f64| {
            if m.is_finite() && m >= cfg.min_length {
                Ok(Truth::Length { meters: m })
            } else {
                Err("length_too_small")
            }
        };
        if let Some(rel) = self.requires()
            && rel.holds(g, a, b, cfg) != Some(true)
        {
            return Err(rel.ambiguity_reason());
        }
        let ob = &g.objects[b];
        let cb = ob.center();
        match self {
            Distance => length((cb - ca).norm()),
            Gap => length(g.gap(a, b)),
            HorizontalDistance => length((cb.xy() - ca.xy()).norm()),
            VerticalDistance => length((cb.z - ca.z).abs()),
            Width => length(oa.width()),
            Height => length(oa.height()),
            DepthExtent => length(oa.depth()),
            CameraDistance => length((ca - g.camera).norm()),
            LeftOffset => length(cb.x - ca.x),
            RightOffset => length(ca.x - cb.x),
            AboveOffset => length(ca.z - cb.z),
            BelowOffset => length(cb.z - ca.z),
            FrontOffset => length(cb.y - ca.y),
            BehindOffset => length(ca.y - cb.y),
            ClockDirection => {
                let d = cb.xy() - ca.xy();
                if d.norm()
                    < cfg.margin * 0.5 * (oa.width().max(oa.depth()) + ob.width().max(ob.depth()))
                {
                    return Err("clock_too_close");
                }
                clock_hour(d.x, d.y, cfg.clock_boundary_deg)
            }
            CameraClock => {
                let d = ca.xy() - g.camera.xy();
                if d.norm() < cfg.min_length {
                    return Err("clock_too_close");
                }
                clock_hour(d.x, d.y, cfg.clock_boundary_deg)
            }
            ElevationAngle => {
                let d = cb - ca;
                let deg = d.z.atan2(d.xy().norm()).to_degrees();
                if deg < 1.0 {
                    Err("angle_too_small")
                } else {
                    Ok(Truth::Angle { degrees: deg })
                }
            }
            CameraLookDown => {
                let d = ca - g.camera;
                let deg = d.z.atan2(d.xy().norm()).to_degrees();
                if deg > -1.0 {
                    Err("angle_too_small")
                } else {
                    Ok(Truth::Angle { degrees: deg })
                }
            }
            HeightDifference => length(oa.height() - ob.height()),
            WidthDifference => length(oa.width() - ob.width()),
            TopHeight => length(oa.top()),
            BottomHeight => {
                // Only objects resting on something above the floor: "0 m" is not a question worth asking.
                if oa.bottom() < 0.05 {
                    Err("on_floor")
                } else {
                    length(oa.bottom())
                }
            }
            CameraHorizontalDistance => length((ca.xy() - g.camera.xy()).norm()),
            MaxDimension => length(oa.obb.extents.max()),
        }
    }
}

/// Clock position of a horizontal direction (x right, y away from the viewer): 12 = +y, 3 = +x.
fn clock_hour(dx: f64, dy: f64, boundary_deg: f64) -> Result<Truth, &'static str> {
    let deg = dx.atan2(dy).to_degrees().rem_euclid(360.0);
    let hours = deg / 30.0;
    let nearest = hours.round();
    if (hours - nearest).abs() > 0.5 - boundary_deg / 30.0 {
        return Err("clock_near_boundary");
    }
    let hour = (nearest as i64).rem_euclid(12);
    Ok(Truth::Clock {
        hour: if hour == 0 { 12 } else { hour as u8 },
    })
}

/// Every question type this module can emit, qualitative first.
pub fn question_types() -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = Vec::new();
    kinds.extend(PREDICATE_KINDS);
    kinds.extend(CHOICE_KINDS);
    kinds.extend(Quantity::ALL.iter().map(|q| q.kind()));
    kinds
}

/// One generated question/answer pair with its truth.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedQa {
    pub question: String,
    pub answer: String,
    pub spatial: SpatialQa,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Predicate(Relation),
    Choice(Relation),
    Quantity(Quantity),
}

#[derive(Debug, Clone)]
struct Candidate {
    kind: Kind,
    a: usize,
    b: usize,
    /// The truth (for choices, built from `winner` at render time: most candidates are never asked).
    truth: Truth,
    winner: usize,
}

/// Generates up to `cfg.qa_per_image` question/answer pairs for `g`, `cfg.qualitative_share` of them qualitative
/// and the rest quantitative when both pools allow, cycling over question types so every type that has a candidate gets used.
/// Candidates rejected as ambiguous are counted in `skips` by reason.
pub fn generate(
    g: &SceneGraph,
    cfg: &QaConfig,
    rng: &mut impl Rng,
    skips: &mut SkipCounts,
) -> Vec<GeneratedQa> {
    let n = g.objects.len();
    let n_qual = PREDICATE_KINDS.len() + CHOICE_KINDS.len();
    let mut pools: Vec<Vec<Candidate>> = vec![Vec::new(); n_qual + Quantity::ALL.len()];

    for a in 0..n {
        for b in 0..n {
            if a == b {
                continue;
            }
            for rel in Relation::PRIMARY {
                match rel.holds(g, a, b, cfg) {
                    None => {
                        if a < b {
                            count_skip(skips, rel.ambiguity_reason());
                        }
                    }
                    Some(v) => {
                        let opp = rel.opposite();
                        pools[rel.index()].push(Candidate {
                            kind: Kind::Predicate(rel),
                            a,
                            b,
                            truth: Truth::Bool { value: v },
                            winner: a,
                        });
                        pools[opp.index()].push(Candidate {
                            kind: Kind::Predicate(opp),
                            a,
                            b,
                            truth: Truth::Bool { value: !v },
                            winner: a,
                        });
                        if a < b {
                            let (winner, loser) = if v { (a, b) } else { (b, a) };
                            for (r, w) in [(rel, winner), (opp, loser)] {
                                pools[PREDICATE_KINDS.len() + r.index()].push(Candidate {
                                    kind: Kind::Choice(r),
                                    a,
                                    b,
                                    truth: Truth::Bool { value: w == a },
                                    winner: w,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    for (qi, q) in Quantity::ALL.iter().enumerate() {
        for a in 0..n {
            if q.arity() == 1 {
                push_quantity(&mut pools[n_qual + qi], *q, g, a, a, cfg, skips);
                continue;
            }
            for b in 0..n {
                if a == b || (!q.ordered() && b < a) {
                    continue;
                }
                push_quantity(&mut pools[n_qual + qi], *q, g, a, b, cfg, skips);
            }
        }
    }

    // Pools are laid out in the order of `question_types`.
    for (pool, kind) in pools.iter_mut().zip(question_types()) {
        if !cfg.asks(kind) {
            pool.clear();
        }
    }

    let want_qual = (cfg.qa_per_image as f64 * cfg.qualitative_share).round() as usize;
    let (qual_pools, quant_pools) = pools.split_at_mut(n_qual);
    let avail_qual: usize = qual_pools.iter().map(Vec::len).sum();
    let avail_quant: usize = quant_pools.iter().map(Vec::len).sum();
    // When one family runs short, the other fills the remaining slots.
    let take_qual = want_qual
        .max(cfg.qa_per_image.saturating_sub(avail_quant))
        .min(avail_qual);
    let take_quant = (cfg.qa_per_image - take_qual).min(avail_quant);
    let mut chosen = round_robin(qual_pools, take_qual, rng);
    chosen.extend(round_robin(quant_pools, take_quant, rng));
    chosen.shuffle(rng);
    chosen
        .into_iter()
        .map(|c| {
            let mut qa = render(g, &c, cfg, rng);
            let reasoned = cfg.reasoned_answers
                && matches!(qa.spatial.truth, Truth::Bool { .. } | Truth::Choice { .. });
            if cfg.short_answers
                && !reasoned
                && let Some((short, unit)) =
                    phrase::short_answer(&qa.spatial.truth, &cfg.number_style, rng)
            {
                qa.answer = short;
                qa.spatial.unit_shown = unit;
            }
            qa
        })
        .collect()
}

fn push_quantity(
    pool: &mut Vec<Candidate>,
    q: Quantity,
    g: &SceneGraph,
    a: usize,
    b: usize,
    cfg: &QaConfig,
    skips: &mut SkipCounts,
) {
    match q.value(g, a, b, cfg) {
        Ok(truth) => pool.push(Candidate {
            kind: Kind::Quantity(q),
            a,
            b,
            truth,
            winner: a,
        }),
        // Offsets and differences are only asked in the direction that holds: the other direction is not a skip.
        Err(reason) if q.requires().is_some() && reason.starts_with("ambiguous") => {}
        Err(reason) => count_skip(skips, reason),
    }
}

/// Takes `want` candidates cycling over the pools in a random order, a random candidate from each.
fn round_robin(pools: &mut [Vec<Candidate>], want: usize, rng: &mut impl Rng) -> Vec<Candidate> {
    let mut order: Vec<usize> = (0..pools.len()).filter(|&i| !pools[i].is_empty()).collect();
    order.shuffle(rng);
    let mut out = Vec::with_capacity(want);
    while out.len() < want && !order.is_empty() {
        order.retain(|&i| !pools[i].is_empty());
        for &i in &order {
            if out.len() == want {
                break;
            }
            let k = rng.random_range(0..pools[i].len());
            out.push(pools[i].swap_remove(k));
        }
    }
    out
}

fn render(g: &SceneGraph, c: &Candidate, cfg: &QaConfig, rng: &mut impl Rng) -> GeneratedQa {
    let name_a = g.objects[c.a].name.as_str();
    let name_b = g.objects[c.b].name.as_str();
    let the_a = format!("the {name_a}");
    let the_b = format!("the {name_b}");
    // A reasoned answer lists the two objects by short keys (their colours when those differ).
    let (key_a, key_b) = phrase::reasoned_keys(name_a, name_b);
    let source = g.source;
    match c.kind {
        Kind::Predicate(rel) => {
            let value = matches!(c.truth, Truth::Bool { value: true });
            let (question, mut answer) =
                phrase::predicate(rel, &the_a, &the_b, value, cfg.phrasing, rng);
            if cfg.reasoned_answers {
                answer = phrase::reasoned_predicate(rel, key_a, key_b, value);
            }
            GeneratedQa {
                question,
                answer,
                spatial: SpatialQa {
                    kind: QuestionKind::Predicate(rel),
                    objects: vec![name_a.to_string(), name_b.to_string()],
                    truth: c.truth.clone(),
                    unit_shown: None,
                    source,
                },
            }
        }
        Kind::Choice(rel) => {
            let winner = g.objects[c.winner].name.clone();
            let truth = Truth::Choice {
                value: winner.clone(),
                options: vec![name_a.to_string(), name_b.to_string()],
            };
            let (first, second) = if rng.random_bool(0.5) {
                (&the_a, &the_b)
            } else {
                (&the_b, &the_a)
            };
            let the_winner = format!("the {winner}");
            let (question, mut answer) =
                phrase::choice(rel, first, second, &the_winner, cfg.phrasing, rng);
            if cfg.reasoned_answers {
                let (winner_key, loser_key) = if c.winner == c.a {
                    (key_a, key_b)
                } else {
                    (key_b, key_a)
                };
                answer = phrase::reasoned_choice(rel, winner_key, loser_key, &winner);
            }
            GeneratedQa {
                question,
                answer,
                spatial: SpatialQa {
                    kind: QuestionKind::Choice(rel),
                    objects: vec![name_a.to_string(), name_b.to_string()],
                    truth,
                    unit_shown: None,
                    source,
                },
            }
        }
        Kind::Quantity(q) => {
            let (question, answer, unit) = phrase::quantity_with_style(
                q,
                &the_a,
                &the_b,
                &c.truth,
                &cfg.number_style,
                cfg.phrasing,
                rng,
            );
            let objects = if q.arity() == 1 {
                vec![name_a.to_string()]
            } else {
                vec![name_a.to_string(), name_b.to_string()]
            };
            GeneratedQa {
                question,
                answer,
                spatial: SpatialQa {
                    kind: QuestionKind::Quantity(q),
                    objects,
                    truth: c.truth.clone(),
                    unit_shown: unit,
                    source,
                },
            }
        }
    }
}

/// Checks that the answer text reads back (with the `svlm-answers` parsers the evaluator uses) to the truth:
/// yes/no and choices exactly, clock hours exactly, angles within half a degree, lengths within the rounding of
/// the default number style (or, for ranges, containing the truth).
pub fn verify_answer(qa: &GeneratedQa) -> Result<(), AnswerMismatch> {
    let answer = qa.answer.as_str();
    let mismatch = |read: String, truth: String| AnswerMismatch::Reads {
        answer: answer.to_string(),
        read,
        truth,
    };
    match &qa.spatial.truth {
        Truth::Bool { value } => match svlm_answers::parse_yes_no(answer) {
            Some(v) if v == *value => Ok(()),
            other => Err(mismatch(format!("{other:?}"), value.to_string())),
        },
        Truth::Choice { value, options } => match svlm_answers::parse_choice(answer, options) {
            Some(i) if options.get(i) == Some(value) => Ok(()),
            other => Err(mismatch(
                format!("option {other:?} of {options:?}"),
                format!("{value:?}"),
            )),
        },
        Truth::Length { meters } => {
            let parsed =
                svlm_answers::parse_length(answer).ok_or_else(|| AnswerMismatch::Unread {
                    answer: answer.to_string(),
                    what: "length",
                })?;
            let tolerance =
                svlm_answers::NumberStyle::default().max_single_relative_error() * meters + 1e-9;
            let ok = if parsed.is_range() {
                parsed.low_m - 1e-9 * meters.max(1.0) <= *meters
                    && *meters <= parsed.high_m + 1e-9 * meters.max(1.0)
            } else {
                (parsed.meters - meters).abs() <= tolerance
            };
            if ok {
                Ok(())
            } else {
                Err(mismatch(format!("{parsed:?}"), format!("{meters} m")))
            }
        }
        Truth::Clock { hour } => match svlm_answers::parse_clock(answer) {
            Some(h) if h == *hour => Ok(()),
            other => Err(mismatch(format!("{other:?} o'clock"), hour.to_string())),
        },
        Truth::Angle { degrees } => match svlm_answers::parse_angle_degrees(answer) {
            Some(d) if (d - degrees).abs() <= 0.5 + 1e-9 => Ok(()),
            other => Err(mismatch(format!("{other:?} degrees"), degrees.to_string())),
        },
    }
}

/// A generated answer that does not read back as its truth ([`verify_answer`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerMismatch {
    #[error("{answer:?} reads as {read}, truth {truth}")]
    Reads {
        answer: String,
        read: String,
        truth: String,
    },
    #[error("{answer:?}: no {what}")]
    Unread { answer: String, what: &'static str },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::test_util::{boxed, graph};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Camera 1.5 m up at the origin; objects spread left/right, front/back, one on top of another.
    fn scene() -> SceneGraph {
        graph(
            vec![
                boxed("red cube", [-1.0, 3.0, 0.15], [0.3, 0.3, 0.3]),
                boxed("blue ball", [1.0, 3.0, 0.1], [0.2, 0.2, 0.2]),
                boxed("green cabinet", [0.0, 5.0, 0.5], [0.8, 0.5, 1.0]),
                boxed("yellow cone", [0.0, 5.0, 1.1], [0.2, 0.2, 0.2]),
                boxed("white box", [0.2, 1.8, 0.05], [0.5, 0.4, 0.1]),
            ],
            [0.0, 0.0, 1.5],
        )
    }

    fn all_qa(g: &SceneGraph, seed: u64) -> (Vec<GeneratedQa>, SkipCounts) {
        let cfg = QaConfig {
            qa_per_image: 10_000,
            ..QaConfig::default()
        };
        let mut skips = SkipCounts::new();
        let qas = generate(g, &cfg, &mut ChaCha8Rng::seed_from_u64(seed), &mut skips);
        (qas, skips)
    }

    fn find<'a>(qas: &'a [GeneratedQa], kind: &str, objects: &[&str]) -> Vec<&'a GeneratedQa> {
        qas.iter()
            .filter(|q| q.spatial.kind == kind && q.spatial.objects == objects)
            .collect()
    }

    /// The unit a record says its answer shows, read back from the answer text.
    fn unit_read_back(truth: &Truth, answer: &str) -> Result<Option<String>, String> {
        match truth {
            Truth::Length { .. } => svlm_answers::parse_length(answer)
                .map(|l| Some(l.unit.symbol().to_string()))
                .ok_or_else(|| format!("{answer:?}: no length")),
            Truth::Angle { .. } => svlm_answers::parse_angle_degrees(answer)
                .map(|_| Some("deg".to_string()))
                .ok_or_else(|| format!("{answer:?}: no angle")),
            _ => Ok(None),
        }
    }

    /// Every record of a synthesis run reads back, with the evaluator's parsers, to its truth and to the unit it
    /// says it shows: every question type, sentence and short answers, mixed and plain numbers, several seeds.
    #[test]
    fn every_record_reads_back_to_its_truth_and_unit() {
        use crate::graph::{EstimateParams, VisibilityParams};
        use crate::pipeline::synthesize_item;
        use crate::scene::TruthSource;
        use crate::source::{ItemSource, WorldSource};
        let source = WorldSource {
            scenes: 4,
            seed: 11,
            config: svlm_world::SceneConfig {
                width: 160,
                height: 120,
                ..svlm_world::SceneConfig::default()
            },
            truth: TruthSource::Exact,
            estimate: EstimateParams::default(),
            visibility: VisibilityParams {
                min_visible_pixels: 40,
                ..VisibilityParams::default()
            },
        };
        let items: Vec<_> = (0..source.len())
            .map(|i| source.item(i).expect("a procedural scene"))
            .collect();
        let (mut lengths, mut short_lengths, mut angles) = (0, 0, 0);
        let mut kinds = std::collections::BTreeSet::new();
        for seed in [0u64, 1, 2] {
            for short_answers in [false, true] {
                for number_style in [
                    svlm_answers::NumberStyle::default(),
                    svlm_answers::NumberStyle::plain_metric(),
                ] {
                    let cfg = QaConfig {
                        qa_per_image: 80,
                        short_answers,
                        number_style,
                        ..QaConfig::default()
                    };
                    for (index, item) in items.iter().enumerate() {
                        let out = synthesize_item(item.clone(), index, seed, &cfg);
                        assert_eq!(
                            out.skips.get("answer_does_not_parse"),
                            None,
                            "seed {seed}, item {index}"
                        );
                        let answers = out.record.conversations.chunks(2).map(|t| &t[1].value);
                        assert_eq!(answers.len(), out.record.spatial.len());
                        for (spatial, answer) in out.record.spatial.iter().zip(answers) {
                            kinds.insert(spatial.kind.to_string());
                            let qa = GeneratedQa {
                                question: String::new(),
                                answer: answer.clone(),
                                spatial: spatial.clone(),
                            };
                            if let Err(e) = verify_answer(&qa) {
                                panic!("seed {seed}, {}: {e}", spatial.kind);
                            }
                            let unit = unit_read_back(&spatial.truth, answer)
                                .unwrap_or_else(|e| panic!("{}: {e}", spatial.kind));
                            assert_eq!(
                                spatial.unit_shown, unit,
                                "seed {seed}, short {short_answers}, {}: {answer:?}",
                                spatial.kind
                            );
                            match spatial.truth {
                                Truth::Length { .. } if short_answers => short_lengths += 1,
                                Truth::Length { .. } => lengths += 1,
                                Truth::Angle { .. } => angles += 1,
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
        assert!(
            lengths > 100 && short_lengths > 100 && angles > 10,
            "{lengths} lengths, {short_lengths} short lengths, {angles} angles"
        );
        assert!(
            kinds.len() >= 40,
            "only {} question types: {kinds:?}",
            kinds.len()
        );
    }

    #[test]
    fn type_allow_list_and_number_style() {
        let g = scene();
        let cfg = QaConfig {
            qa_per_image: 10_000,
            kinds: Some(vec!["left_predicate".into(), "distance".into()]),
            number_style: svlm_answers::NumberStyle::plain_metric(),
            ..QaConfig::default()
        };
        cfg.validate().unwrap();
        let mut skips = SkipCounts::new();
        let qas = generate(&g, &cfg, &mut ChaCha8Rng::seed_from_u64(9), &mut skips);
        let kinds: std::collections::BTreeSet<&str> =
            qas.iter().map(|q| q.spatial.kind.as_str()).collect();
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            ["distance", "left_predicate"]
        );
        for q in qas.iter().filter(|q| q.spatial.kind == "distance") {
            let unit = q.spatial.unit_shown.as_deref().unwrap_or("");
            assert!(
                ["mm", "cm", "m", "km"].contains(&unit),
                "{unit}: {}",
                q.answer
            );
            assert!(verify_answer(q).is_ok(), "{}", q.answer);
        }
        let short = QaConfig {
            short_answers: true,
            ..cfg.clone()
        };
        let qas = generate(&g, &short, &mut ChaCha8Rng::seed_from_u64(9), &mut skips);
        for q in &qas {
            assert!(verify_answer(q).is_ok(), "{}", q.answer);
            match &q.spatial.truth {
                Truth::Bool { value } => {
                    assert_eq!(q.answer, if *value { "Yes." } else { "No." })
                }
                Truth::Length { .. } => assert!(
                    q.answer.split_whitespace().count() == 2
                        && (q.answer.ends_with("meters.") || q.answer.ends_with("meter.")),
                    "{}",
                    q.answer
                ),
                other => panic!("unexpected truth {other:?}"),
            }
        }
        let bad = QaConfig {
            kinds: Some(vec!["left_predicate".into(), "leftish".into()]),
            ..QaConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("leftish"));
    }

    #[test]
    fn reasoned_answers_list_along_the_axis_then_decide() {
        // Whatever the style of the other answers, a reasoned one names the objects by their keys.
        for short_answers in [true, false] {
            reasoned_answers_in_style(short_answers);
        }
    }

    fn reasoned_answers_in_style(short_answers: bool) {
        let g = scene();
        let cfg = QaConfig {
            qa_per_image: 10_000,
            short_answers,
            reasoned_answers: true,
            number_style: svlm_answers::NumberStyle::plain_metric(),
            ..QaConfig::default()
        };
        let mut skips = SkipCounts::new();
        let qas = generate(&g, &cfg, &mut ChaCha8Rng::seed_from_u64(3), &mut skips);
        let (mut predicates, mut choices) = (0, 0);
        // Every listing of a pair along one axis, whichever relation asked: (axis, {a, b}) -> order.
        let mut orders: std::collections::BTreeMap<(String, [String; 2]), [String; 2]> =
            Default::default();
        let mut check_order = |axis: &str, x: &str, y: &str, answer: &str| {
            let mut key = [x.to_string(), y.to_string()];
            key.sort();
            let seen = orders
                .entry((axis.to_string(), key))
                .or_insert([x.to_string(), y.to_string()]);
            assert_eq!(seen, &[x.to_string(), y.to_string()], "{answer}");
        };
        // "X: tag" -> (X, tag)
        let tagged = |item: &str| {
            let (o, t) = item.split_once(": ").expect("a tagged object");
            (o.to_string(), t.to_string())
        };
        for q in &qas {
            verify_answer(q).unwrap_or_else(|e| panic!("{}: {e}", q.question));
            let keys = match q.spatial.objects.as_slice() {
                [a, b] => {
                    let (ka, kb) = phrase::reasoned_keys(a, b);
                    [ka.to_string(), kb.to_string()]
                }
                _ => Default::default(),
            };
            let rel = q
                .spatial
                .kind
                .relation()
                .map(|r| (r.word(), r.opposite().word()));
            match &q.spatial.truth {
                Truth::Bool { value } => {
                    predicates += 1;
                    let (word, opposite) = rel.expect("a relation");
                    // "<axis>: X: tag, Y: tag. So <subject>: tag. Asked: <relation>. Yes|No."
                    let (axis, rest) = q.answer.split_once(": ").expect("axis");
                    assert!(axis.starts_with("From "), "{}", q.answer);
                    let (pair, rest) = rest.split_once(". So ").expect("listing");
                    let (subject, rest) = rest.split_once(". Asked: ").expect("asked");
                    let (asked, verdict) = rest.split_once(". ").expect("verdict");
                    let (x, y) = pair.split_once(", ").expect("two objects");
                    let ((x, x_tag), (y, y_tag)) = (tagged(x), tagged(y));
                    let (subject, subject_tag) = tagged(subject);
                    assert_eq!(subject, keys[0], "{}", q.answer);
                    assert!(
                        keys.contains(&x) && keys.contains(&y) && x != y,
                        "{}",
                        q.answer
                    );
                    let mut tags = [x_tag.as_str(), y_tag.as_str()];
                    tags.sort();
                    let mut want = [word, opposite];
                    want.sort();
                    assert_eq!(tags, want, "{}", q.answer);
                    assert_eq!(
                        subject_tag,
                        if subject == x { x_tag } else { y_tag },
                        "{}",
                        q.answer
                    );
                    assert_eq!(asked, word, "{}", q.answer);
                    assert_eq!(verdict, if *value { "Yes." } else { "No." });
                    assert_eq!(*value, subject_tag == asked, "{}", q.answer);
                    check_order(axis, &x, &y, &q.answer);
                }
                Truth::Choice { value, .. } => {
                    choices += 1;
                    let (word, _) = rel.expect("a relation");
                    let (axis, rest) = q.answer.split_once(": ").expect("axis");
                    let (pair, conclusion) = rest.split_once(". So ").expect("conclusion");
                    let (x, y) = pair.split_once(", ").expect("two objects");
                    let ((x, x_tag), (y, _)) = (tagged(x), tagged(y));
                    assert_eq!(conclusion, format!("{value}."), "{}", q.answer);
                    let winner_key = if value == &q.spatial.objects[0] {
                        &keys[0]
                    } else {
                        &keys[1]
                    };
                    assert_eq!(
                        winner_key == &x,
                        x_tag == word,
                        "the winner carries the relation's tag: {}",
                        q.answer
                    );
                    check_order(axis, &x, &y, &q.answer);
                }
                // Quantities keep the short style.
                Truth::Length { .. } if short_answers => {
                    assert!(q.answer.split_whitespace().count() == 2)
                }
                _ => {}
            }
        }
        assert!(
            predicates > 20 && choices > 20,
            "{predicates} predicates, {choices} choices"
        );
        // A relation and its opposite list along the same axis, from the same end.
        for (kind, direction) in [
            ("left_predicate", "From left to right: "),
            ("left_choice", "From left to right: "),
            ("right_predicate", "From left to right: "),
            ("right_choice", "From left to right: "),
        ] {
            let q = qas
                .iter()
                .find(|q| q.spatial.kind == kind)
                .unwrap_or_else(|| panic!("a {kind}"));
            assert!(q.answer.starts_with(direction), "{}", q.answer);
        }
        // The left-to-right listings agree with the geometry: the first listed is left of the second, by colour.
        let l = qas
            .iter()
            .find(|q| {
                q.spatial.kind == "left_predicate" && q.spatial.objects == ["red cube", "blue ball"]
            })
            .expect("left_predicate red cube / blue ball");
        let red_is_left = matches!(l.spatial.truth, Truth::Bool { value: true });
        let first = if red_is_left {
            "red: left, blue: right"
        } else {
            "blue: left, red: right"
        };
        assert!(
            l.answer
                .starts_with(&format!("From left to right: {first}. ")),
            "{}",
            l.answer
        );
    }

    #[test]
    fn qualitative_share_sets_the_mix() {
        let g = scene();
        let qualitative = |share: f64| {
            let cfg = QaConfig {
                qa_per_image: 12,
                qualitative_share: share,
                ..QaConfig::default()
            };
            let mut skips = SkipCounts::new();
            let qas = generate(&g, &cfg, &mut ChaCha8Rng::seed_from_u64(9), &mut skips);
            assert_eq!(qas.len(), 12);
            qas.iter()
                .filter(|q| matches!(q.spatial.truth, Truth::Bool { .. } | Truth::Choice { .. }))
                .count()
        };
        assert_eq!(qualitative(0.5), 6);
        assert_eq!(qualitative(0.75), 9);
        assert_eq!(qualitative(0.0), 0);
        assert_eq!(qualitative(1.0), 12);
        let bad = QaConfig {
            qualitative_share: 1.5,
            ..QaConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("qualitative_share")
        );
    }

    #[test]
    fn plain_phrasing_asks_each_type_one_way() {
        let g = scene();
        let cfg = |phrasing| QaConfig {
            qa_per_image: 10_000,
            phrasing,
            ..QaConfig::default()
        };
        let wordings = |phrasing| {
            let mut skips = SkipCounts::new();
            let qas = generate(
                &g,
                &cfg(phrasing),
                &mut ChaCha8Rng::seed_from_u64(5),
                &mut skips,
            );
            let mut per_kind: std::collections::BTreeMap<
                String,
                std::collections::BTreeSet<String>,
            > = Default::default();
            for q in &qas {
                // The question with the object names taken out is its wording.
                let mut text = q.question.clone();
                for o in &q.spatial.objects {
                    text = text.replace(o.as_str(), "X");
                }
                per_kind
                    .entry(q.spatial.kind.to_string())
                    .or_default()
                    .insert(text);
            }
            per_kind
        };
        let plain = wordings(phrase::Phrasing::Plain);
        let varied = wordings(phrase::Phrasing::Varied);
        assert!(plain.len() > 20, "{} kinds", plain.len());
        for (kind, texts) in &plain {
            // Two wordings at most: a pair asked in both orders ("X ... X" is the same text) collapses to one.
            assert_eq!(texts.len(), 1, "{kind}: {texts:?}");
        }
        assert!(
            varied.values().any(|t| t.len() > 3),
            "varied phrasing asks in many ways"
        );
        let left = plain.get("left_predicate").expect("left_predicate");
        assert!(left.contains("Is the X to the left of the X?"), "{left:?}");
    }

    #[test]
    fn type_inventory_is_half_qualitative() {
        let kinds = question_types();
        assert!(kinds.len() >= 38, "{} types", kinds.len());
        let unique: std::collections::BTreeSet<_> = kinds.iter().collect();
        assert_eq!(unique.len(), kinds.len());
        assert_eq!(PREDICATE_KINDS.len() + CHOICE_KINDS.len(), 28);
        assert_eq!(Quantity::ALL.len(), 24);
    }

    #[test]
    fn left_right_family() {
        let g = scene();
        let (qas, _) = all_qa(&g, 1);
        let l = find(&qas, "left_predicate", &["red cube", "blue ball"]);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].spatial.truth, Truth::Bool { value: true });
        let r = find(&qas, "right_predicate", &["red cube", "blue ball"]);
        assert_eq!(r[0].spatial.truth, Truth::Bool { value: false });
        let c = find(&qas, "right_choice", &["red cube", "blue ball"]);
        assert!(matches!(&c[0].spatial.truth, Truth::Choice { value, .. } if value == "blue ball"));
        // cabinet and cone share x: never asked left/right.
        assert!(find(&qas, "left_predicate", &["green cabinet", "yellow cone"]).is_empty());
        let off = find(&qas, "left_offset", &["red cube", "blue ball"]);
        assert_eq!(off[0].spatial.truth, Truth::Length { meters: 2.0 });
        assert!(find(&qas, "left_offset", &["blue ball", "red cube"]).is_empty());
    }

    #[test]
    fn above_below_family() {
        let g = scene();
        let (qas, _) = all_qa(&g, 2);
        let a = find(&qas, "above_predicate", &["yellow cone", "green cabinet"]);
        assert_eq!(a[0].spatial.truth, Truth::Bool { value: true });
        let b = find(&qas, "below_choice", &["green cabinet", "yellow cone"]);
        assert!(
            matches!(&b[0].spatial.truth, Truth::Choice { value, .. } if value == "green cabinet")
        );
        // A tall cabinet beside a small cube on the floor is neither above nor below it.
        assert!(find(&qas, "above_predicate", &["green cabinet", "red cube"]).is_empty());
        let off = find(&qas, "above_offset", &["yellow cone", "green cabinet"]);
        assert!(
            matches!(off[0].spatial.truth, Truth::Length { meters } if (meters - 0.6).abs() < 1e-9)
        );
        let elev = find(&qas, "elevation_angle", &["green cabinet", "yellow cone"]);
        assert!(
            matches!(elev[0].spatial.truth, Truth::Angle { degrees } if (degrees - 90.0).abs() < 1e-6)
        );
    }

    #[test]
    fn front_behind_and_camera_family() {
        let g = scene();
        let (qas, _) = all_qa(&g, 3);
        let f = find(&qas, "front_predicate", &["white box", "red cube"]);
        assert_eq!(f[0].spatial.truth, Truth::Bool { value: true });
        let c = find(&qas, "farther_choice", &["red cube", "green cabinet"]);
        assert!(
            matches!(&c[0].spatial.truth, Truth::Choice { value, .. } if value == "green cabinet")
        );
        let d = find(&qas, "camera_distance", &["white box"]);
        let expected = (0.2f64.powi(2) + 1.8f64.powi(2) + 1.45f64.powi(2)).sqrt();
        assert!(
            matches!(d[0].spatial.truth, Truth::Length { meters } if (meters - expected).abs() < 1e-9)
        );
        let clock = find(&qas, "clock_direction", &["red cube", "blue ball"]);
        assert_eq!(clock[0].spatial.truth, Truth::Clock { hour: 3 });
        let clock = find(&qas, "clock_direction", &["white box", "green cabinet"]);
        assert_eq!(clock[0].spatial.truth, Truth::Clock { hour: 12 });
        let cam = find(&qas, "camera_clock", &["green cabinet"]);
        assert_eq!(cam[0].spatial.truth, Truth::Clock { hour: 12 });
        let down = find(&qas, "camera_look_down", &["white box"]);
        let expected = -(1.45f64)
            .atan2((0.2f64.powi(2) + 1.8f64.powi(2)).sqrt())
            .to_degrees();
        assert!(
            matches!(down[0].spatial.truth, Truth::Angle { degrees } if (degrees - expected).abs() < 1e-9)
        );
    }

    #[test]
    fn size_family() {
        let g = scene();
        let (qas, _) = all_qa(&g, 4);
        let t = find(&qas, "taller_predicate", &["green cabinet", "red cube"]);
        assert_eq!(t[0].spatial.truth, Truth::Bool { value: true });
        let w = find(&qas, "thinner_choice", &["red cube", "white box"]);
        assert!(matches!(&w[0].spatial.truth, Truth::Choice { value, .. } if value == "red cube"));
        let b = find(&qas, "smaller_predicate", &["blue ball", "green cabinet"]);
        assert_eq!(b[0].spatial.truth, Truth::Bool { value: true });
        let h = find(&qas, "height", &["green cabinet"]);
        assert!(
            matches!(h[0].spatial.truth, Truth::Length { meters } if (meters - 1.0).abs() < 1e-9)
        );
        let hd = find(&qas, "height_difference", &["green cabinet", "blue ball"]);
        assert!(
            matches!(hd[0].spatial.truth, Truth::Length { meters } if (meters - 0.8).abs() < 1e-9)
        );
        let bottom = find(&qas, "bottom_height", &["yellow cone"]);
        assert!(
            matches!(bottom[0].spatial.truth, Truth::Length { meters } if (meters - 1.0).abs() < 1e-9)
        );
        assert!(find(&qas, "bottom_height", &["red cube"]).is_empty());
        // red cube (0.3) vs blue ball (0.2) heights differ by a third: asked; cube and cone (0.2 vs 0.2): not.
        assert!(find(&qas, "taller_predicate", &["blue ball", "yellow cone"]).is_empty());
    }

    #[test]
    fn distances_family() {
        let g = scene();
        let (qas, _) = all_qa(&g, 5);
        let d = find(&qas, "distance", &["red cube", "blue ball"]);
        assert!(
            matches!(d[0].spatial.truth, Truth::Length { meters } if (meters - (4.0f64 + 0.0025).sqrt()).abs() < 1e-9)
        );
        let gap = find(&qas, "gap", &["red cube", "blue ball"]);
        assert!(
            matches!(gap[0].spatial.truth, Truth::Length { meters } if (meters - 1.75).abs() < 1e-9)
        );
        let h = find(&qas, "horizontal_distance", &["red cube", "blue ball"]);
        assert!(
            matches!(h[0].spatial.truth, Truth::Length { meters } if (meters - 2.0).abs() < 1e-9)
        );
        // The cone sits on the cabinet: gap 0 is below min_length, not asked.
        assert!(find(&qas, "gap", &["green cabinet", "yellow cone"]).is_empty());
    }

    #[test]
    fn every_answer_reads_back_to_its_truth() {
        let g = scene();
        for seed in 0..40 {
            let (qas, _) = all_qa(&g, seed);
            assert!(qas.len() > 150);
            for qa in &qas {
                verify_answer(qa)
                    .unwrap_or_else(|e| panic!("{}: {} -> {e}", qa.spatial.kind, qa.question));
                assert!(
                    qa.question.ends_with('?') || qa.question.ends_with('.'),
                    "{}",
                    qa.question
                );
            }
        }
    }

    #[test]
    fn ambiguous_pairs_are_skipped_and_counted() {
        let g = graph(
            vec![
                boxed("red cube", [0.0, 3.0, 0.1], [0.2, 0.2, 0.2]),
                boxed("blue ball", [0.05, 3.05, 0.1], [0.2, 0.2, 0.2]),
            ],
            [0.0, 0.0, 1.5],
        );
        let (qas, skips) = all_qa(&g, 0);
        assert!(qas.iter().all(|q| q.spatial.kind.relation().is_none()));
        for reason in [
            "ambiguous_left_right",
            "ambiguous_front_behind",
            "ambiguous_height",
            "ambiguous_size",
        ] {
            assert_eq!(skips.get(reason), Some(&1), "{reason}: {skips:?}");
        }
    }

    #[test]
    fn balanced_and_deterministic() {
        let g = scene();
        let cfg = QaConfig {
            qa_per_image: 40,
            ..QaConfig::default()
        };
        let run = |seed| {
            generate(
                &g,
                &cfg,
                &mut ChaCha8Rng::seed_from_u64(seed),
                &mut SkipCounts::new(),
            )
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        assert_eq!(a.len(), 40);
        let qual = a
            .iter()
            .filter(|q| q.spatial.truth.is_qualitative())
            .count();
        assert_eq!(qual, 20);
        let kinds: std::collections::BTreeSet<_> =
            a.iter().map(|q| q.spatial.kind.as_str()).collect();
        assert!(
            kinds.len() >= 30,
            "round robin covers types: {}",
            kinds.len()
        );
    }

    #[test]
    fn clock_hours() {
        let h = |dx: f64, dy: f64| clock_hour(dx, dy, 5.0);
        assert_eq!(h(0.0, 1.0), Ok(Truth::Clock { hour: 12 }));
        assert_eq!(h(1.0, 0.0), Ok(Truth::Clock { hour: 3 }));
        assert_eq!(h(0.0, -1.0), Ok(Truth::Clock { hour: 6 }));
        assert_eq!(h(-1.0, 0.0), Ok(Truth::Clock { hour: 9 }));
        let a = 40f64.to_radians();
        assert_eq!(h(a.sin(), a.cos()), Ok(Truth::Clock { hour: 1 }));
        let a = 14f64.to_radians();
        assert_eq!(h(a.sin(), a.cos()), Err("clock_near_boundary"));
    }
}
