//! Word problems written the many ways people write them: chained steps of
//! seven kinds (see [`STEP_KINDS`]) on small numbers, in sentences drawn from
//! templates (see the `templates` module: at least 30 per kind, plus start,
//! question and distractor sentences).
//!
//! The trace names the quantity each operation makes, then works it with
//! [`crate::columns::worked`]; operations are separated by `; `:
//!
//! ```text
//! <bos>Mia has 23 pens. She buys 4 bags with 12 pens in each. She gives 9 to Tom.
//! How many pens does Mia have now?<think>bags 12*4: 2*4+0=08 1*4+0=04 =48;
//! pens 0023+0048: 3+8+0=11 2+4+1=07 0+0+0=00 0+0+0=00 =71; left 0071-0009: 1-9-0=12 7-0-1=06 0-0-0=00 0-0-0=00 =62</think><answer>62</answer><eos>
//! ```
//! (one line in the data; wrapped here.)
//!
//! | kind | example sentence | operation | label |
//! |---|---|---|---|
//! | `gain` | `She buys 7 more.` | `cur+7` | the noun (`pens`, `dollars`) |
//! | `loss` | `She gives 9 to Tom.` | `cur-9` | `left` |
//! | `groups` | `She buys 4 bags with 12 pens in each.` | `12*4`, then `cur+48` | the container, then the noun |
//! | `times` | `Tom has 3 times as many pens as Mia.` | `cur*3` | the holder's name |
//! | `compare` | `Tom has 15 pens. How many more pens does Mia have than Tom?` | larger minus smaller | `more` |
//! | `price` | `Pens cost 3 dollars each. She buys 12.` | `12*3` | `cost` (`money` when selling; `change` for `50-36` after a bill; `left` after spending) |
//! | `share` | `She shares them equally among 6 friends.` | `cur/6` (exact) | `each` (the container for `bags of 6`) |
//!
//! "Tom has 8 more / fewer pens than Mia" makes Tom the holder: a gain or
//! loss labelled with his name. In a product the one-digit factor is
//! always last (`12*4`, `7*3`: the larger number first).
//!
//! A trace has one to four operations (about 27 / 37 / 24 / 12 %); steps
//! fill them (a `groups` purchase or a purchase from money held takes two).
//! Each step uses the running quantity, so every result but the last feeds a
//! later operation. Numbers stay small so traces stay short (a start of
//! 5..=40 objects or 10..=60 money, changes up to 20, factors and divisors
//! 2..=9, products up to 300, every intermediate at most 999): a sample is
//! about 106 chunks on average and at most [`MAX_CHUNKS`].
//! About 30 % of problems carry a distractor sentence with numbers that do
//! not matter; some put the question first, and one-step problems may be a
//! single question (`How many pens does Mia have left if she has 23 and
//! gives away 7?`).
//!
//! **Held-out templates**: about one in six of every list is never used for
//! [`Forms::Trained`]; a [`Forms::HeldOut`] problem has exactly one sentence
//! from a held-out template ([`templates_in`] finds the templates a text was
//! written from, independently of the generator).

mod templates;

use crate::columns::{worked, Op};
use crate::{Forms, Problem, TaskKind};
use rand::Rng;
use templates::{
    Shape, BAKED, DISTRACTORS, FOOD, HELD, ITEMS, MONEY, OBIG, OSMALL, PICKED, QC, QE, QH, QI, QIL,
    QM, QML, QUESTIONS, SOLO, START, STEPS, T, TWO,
};

/// The kinds of step, in the order of [`template_counts`].
pub const STEP_KINDS: &[&str] = &[
    "gain", "loss", "groups", "times", "compare", "price", "share",
];

/// Longest sample (in pretokenizer chunks incl. special tokens, see
/// [`crate::sample_chunks`]); longer draws are redrawn.
pub const MAX_CHUNKS: usize = 200;

/// Every intermediate result stays at or below this.
const LIMIT: u64 = 999;
/// Products stay at or below this (short traces).
const PRODUCT_MAX: u64 = 300;

/// (name, female)
const PEOPLE: &[(&str, bool)] = &[
    ("Mia", true),
    ("Ana", true),
    ("Lily", true),
    ("Zoe", true),
    ("Eva", true),
    ("Nina", true),
    ("Ivy", true),
    ("Sara", true),
    ("Emma", true),
    ("Olivia", true),
    ("Ava", true),
    ("Grace", true),
    ("Chloe", true),
    ("Ella", true),
    ("Lucy", true),
    ("Maya", true),
    ("Hana", true),
    ("Rosa", true),
    ("Leila", true),
    ("Amara", true),
    ("Priya", true),
    ("Mei", true),
    ("Fatima", true),
    ("Julia", true),
    ("Tom", false),
    ("Ben", false),
    ("Sam", false),
    ("Max", false),
    ("Leo", false),
    ("Omar", false),
    ("Raj", false),
    ("Liam", false),
    ("Noah", false),
    ("Jack", false),
    ("Owen", false),
    ("Luca", false),
    ("Ravi", false),
    ("Ali", false),
    ("Kofi", false),
    ("Diego", false),
    ("Hugo", false),
    ("Ethan", false),
    ("Adam", false),
    ("Felix", false),
    ("Kenji", false),
    ("Yusuf", false),
    ("Marco", false),
    ("Jonas", false),
];

/// Kinds of object: things, fruit and vegetables (picked), baked food, other food.
const THING: u8 = 0;
const FRUIT: u8 = 1;
const BAKE: u8 = 2;
const FOODS: u8 = 3;

/// (plural, singular, kind)
const ITEMS_: &[(&str, &str, u8)] = &[
    ("apples", "apple", FRUIT),
    ("pears", "pear", FRUIT),
    ("plums", "plum", FRUIT),
    ("oranges", "orange", FRUIT),
    ("lemons", "lemon", FRUIT),
    ("peaches", "peach", FRUIT),
    ("cherries", "cherry", FRUIT),
    ("grapes", "grape", FRUIT),
    ("bananas", "banana", FRUIT),
    ("carrots", "carrot", FRUIT),
    ("eggs", "egg", FOODS),
    ("cookies", "cookie", BAKE),
    ("muffins", "muffin", BAKE),
    ("cupcakes", "cupcake", BAKE),
    ("candies", "candy", FOODS),
    ("crackers", "cracker", BAKE),
    ("pies", "pie", BAKE),
    ("donuts", "donut", BAKE),
    ("pens", "pen", THING),
    ("pencils", "pencil", THING),
    ("crayons", "crayon", THING),
    ("markers", "marker", THING),
    ("erasers", "eraser", THING),
    ("books", "book", THING),
    ("notebooks", "notebook", THING),
    ("stickers", "sticker", THING),
    ("stamps", "stamp", THING),
    ("cards", "card", THING),
    ("marbles", "marble", THING),
    ("beads", "bead", THING),
    ("shells", "shell", THING),
    ("buttons", "button", THING),
    ("balloons", "balloon", THING),
    ("toys", "toy", THING),
    ("balls", "ball", THING),
    ("blocks", "block", THING),
    ("rocks", "rock", THING),
    ("flowers", "flower", THING),
    ("ribbons", "ribbon", THING),
    ("cups", "cup", THING),
    ("plates", "plate", THING),
    ("socks", "sock", THING),
    ("kites", "kite", THING),
    ("puzzles", "puzzle", THING),
    ("coins", "coin", THING),
    ("tickets", "ticket", THING),
    ("photos", "photo", THING),
    ("bottles", "bottle", THING),
    ("candles", "candle", THING),
];

/// (plural, singular, what one pays with, its values)
const CURRENCIES: &[(&str, &str, &str, &[u64])] = &[
    ("dollars", "dollar", "bill", &[5, 10, 20, 50, 100]),
    ("euros", "euro", "note", &[5, 10, 20, 50, 100, 200]),
    ("pounds", "pound", "note", &[5, 10, 20, 50]),
    ("cents", "cent", "coin", &[25, 50]),
];

/// (plural, singular)
const CONTAINERS: &[(&str, &str)] = &[
    ("bags", "bag"),
    ("boxes", "box"),
    ("packs", "pack"),
    ("jars", "jar"),
    ("baskets", "basket"),
    ("crates", "crate"),
    ("trays", "tray"),
    ("cartons", "carton"),
    ("buckets", "bucket"),
    ("tins", "tin"),
    ("bowls", "bowl"),
    ("cases", "case"),
];

/// (plural, singular)
const RECIPIENTS: &[(&str, &str)] = &[
    ("friends", "friend"),
    ("children", "child"),
    ("kids", "kid"),
    ("classmates", "classmate"),
    ("cousins", "cousin"),
    ("students", "student"),
    ("neighbors", "neighbor"),
    ("teammates", "teammate"),
];

impl Shape {
    /// Index into [`STEP_KINDS`].
    fn kind(self) -> usize {
        use Shape::*;
        match self {
            GainSelf | GainRel | GainFirst | GainAsk => 0,
            LossSelf | LossRel | LossFirst | LossAsk => 1,
            GroupsAdd | GroupsFirst | GroupsAsk => 2,
            TimesRel | TimesSelf | TimesFirst | TimesAsk => 3,
            CompareLast | CompareFirst => 4,
            PriceSell | PriceFirst | PriceAsk | PriceSpend | PriceChange => 5,
            ShareEach | ShareBags | ShareEachFirst | ShareBagsFirst => 6,
        }
    }

    /// Replaces the start sentence (the template states the first amount).
    fn first(self) -> bool {
        use Shape::*;
        matches!(
            self,
            GainFirst
                | GainAsk
                | LossFirst
                | LossAsk
                | GroupsFirst
                | GroupsAsk
                | TimesFirst
                | TimesAsk
                | CompareFirst
                | PriceFirst
                | PriceAsk
                | ShareEachFirst
                | ShareBagsFirst
        )
    }

    /// Asks the question itself: the last step.
    fn terminal(self) -> bool {
        use Shape::*;
        matches!(
            self,
            GainAsk
                | LossAsk
                | GroupsAsk
                | TimesAsk
                | CompareLast
                | CompareFirst
                | PriceAsk
                | ShareEach
                | ShareBags
                | ShareEachFirst
                | ShareBagsFirst
        )
    }

    /// The number placeholders the templates of this shape use, every one of
    /// them an operand (the `TWO` templates leave out `k`).
    #[cfg(test)]
    fn numbers(self) -> &'static str {
        use Shape::*;
        match self {
            GainSelf | GainRel | LossSelf | LossRel | CompareLast => "n",
            GainFirst | GainAsk | LossFirst | LossAsk | CompareFirst => "an",
            GroupsAdd | GroupsFirst | GroupsAsk => "km",
            TimesRel | TimesSelf | ShareEach | ShareBags => "k",
            TimesFirst | TimesAsk | ShareEachFirst | ShareBagsFirst => "ak",
            PriceSell => "r",
            PriceFirst | PriceAsk | PriceSpend => "qr",
            PriceChange => "b",
        }
    }
}

/// What the running quantity is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Items,
    Money,
    /// A price to pay (after buying at a unit price).
    Cost,
}

/// The words and numbers a template is filled with.
#[derive(Clone, Copy, Debug, Default)]
struct Vars {
    owner: usize,
    other: usize,
    dperson: usize,
    /// Comparisons: `{O}` has more than the owner.
    big_other: bool,
    noun: usize,
    /// `{X}` is the currency rather than the objects.
    x_money: bool,
    currency: usize,
    y: usize,
    container: usize,
    recipient: usize,
    n: u64,
    a: u64,
    k: u64,
    m: u64,
    q: u64,
    r: u64,
    b: u64,
    d: u64,
    e: u64,
}

/// One operation of the trace.
#[derive(Clone, Debug)]
struct Operation {
    label: String,
    a: u64,
    op: Op,
    b: u64,
}

impl Operation {
    fn new(label: &str, a: u64, op: Op, b: u64) -> Self {
        Operation {
            label: label.to_string(),
            a,
            op,
            b,
        }
    }

    /// A product written with the one-digit factor last (the larger number
    /// first); `None` unless that factor is 2..=9 and the product small.
    fn mul(label: &str, x: u64, y: u64) -> Option<Self> {
        let (a, b) = if x >= y { (x, y) } else { (y, x) };
        ((2..=9).contains(&b) && a * b <= PRODUCT_MAX).then(|| Operation::new(label, a, Op::Mul, b))
    }
}

struct Step {
    shape: Shape,
    v: Vars,
    two: bool,
    ops: Vec<Operation>,
}

#[derive(Clone)]
struct State {
    role: Role,
    value: u64,
    owner: usize,
    used: Vec<usize>,
    /// Question fit of the running quantity (0 after a terminal step).
    fit: u32,
    /// The holder changed in the last step: name them in the next sentence.
    switched: bool,
}

/// A problem before its sentences are written.
struct Plan {
    /// The start sentence's words (`None` when the first step states the start).
    start: Option<Vars>,
    steps: Vec<(Step, State)>,
    /// The question's words and fit (`None` when the last step asks it).
    question: Option<(Vars, u32)>,
}

fn pick<T: Copy, R: Rng + ?Sized>(rng: &mut R, xs: &[T]) -> T {
    xs[rng.gen_range(0..xs.len())]
}

fn fresh_person<R: Rng + ?Sized>(rng: &mut R, used: &mut Vec<usize>) -> usize {
    loop {
        let i = rng.gen_range(0..PEOPLE.len());
        if !used.contains(&i) {
            used.push(i);
            return i;
        }
    }
}

fn start_amount<R: Rng + ?Sized>(rng: &mut R, role: Role) -> u64 {
    match role {
        Role::Items => rng.gen_range(5..=40),
        _ => rng.gen_range(10..=60),
    }
}

/// A unit price and a quantity: one of them 2..=9, the other 2..=15.
fn price_pair<R: Rng + ?Sized>(rng: &mut R) -> (u64, u64) {
    let small = rng.gen_range(2..=9);
    let large = rng.gen_range(2..=15);
    if rng.gen_bool(0.5) {
        (small, large)
    } else {
        (large, small)
    }
}

/// Operations a step of `shape` adds to the trace.
fn ops_of(shape: Shape) -> usize {
    match shape {
        Shape::GroupsAdd | Shape::PriceSpend => 2,
        _ => 1,
    }
}

/// The shapes that can come next with `remaining` operations left: those
/// that state the start themselves (first step only) and those that follow
/// a sentence. A step that asks the question uses up the operations.
fn candidates(first: bool, remaining: usize, role: Role) -> (Vec<Shape>, Vec<Shape>) {
    use Shape::*;
    let fits = |s: &Shape| ops_of(*s) <= remaining && (!s.terminal() || ops_of(*s) == remaining);
    let fused: Vec<Shape> = if first {
        let mut f = vec![GroupsFirst, PriceFirst, ShareBagsFirst, GroupsAsk, PriceAsk];
        if role != Role::Cost {
            f.extend([
                GainFirst,
                LossFirst,
                TimesFirst,
                CompareFirst,
                ShareEachFirst,
                GainAsk,
                LossAsk,
                TimesAsk,
            ]);
        }
        f
    } else {
        Vec::new()
    };
    let mid: Vec<Shape> = match role {
        Role::Items => vec![
            GainSelf,
            GainRel,
            LossSelf,
            LossRel,
            TimesRel,
            TimesSelf,
            GroupsAdd,
            PriceSell,
            CompareLast,
            ShareEach,
            ShareBags,
        ],
        Role::Money => vec![
            GainSelf,
            GainRel,
            LossSelf,
            LossRel,
            TimesRel,
            TimesSelf,
            PriceSpend,
            CompareLast,
            ShareEach,
        ],
        Role::Cost => vec![PriceChange],
    };
    (
        fused.into_iter().filter(fits).collect(),
        mid.into_iter().filter(fits).collect(),
    )
}

/// Draws the numbers of one step of `shape` on the running state; `None`
/// when they cannot fit (the caller tries another shape).
fn make_step<R: Rng + ?Sized>(
    rng: &mut R,
    shape: Shape,
    st: &State,
    base: &Vars,
) -> Option<(Step, State)> {
    use Shape::*;
    let mut ns = st.clone();
    let mut v = *base;
    v.owner = st.owner;
    v.x_money = st.role != Role::Items;
    v.other = fresh_person(rng, &mut ns.used);
    v.y = loop {
        let y = rng.gen_range(0..ITEMS_.len());
        if y != base.noun {
            break y;
        }
    };
    v.container = rng.gen_range(0..CONTAINERS.len());
    v.recipient = rng.gen_range(0..RECIPIENTS.len());
    if matches!(
        shape,
        GroupsFirst | GroupsAsk | PriceFirst | PriceAsk | ShareBagsFirst
    ) {
        // These shapes start with objects whatever the problem started with.
        v.x_money = false;
    }
    let noun = if v.x_money {
        CURRENCIES[v.currency].0
    } else {
        ITEMS_[v.noun].0
    };
    let (own, own_left) = if v.x_money { (QM, QML) } else { (QI, QIL) };
    let cur = st.value;
    let mut two = false;
    ns.switched = false;
    let ops = match shape {
        GainSelf | GainRel | GainFirst | GainAsk => {
            let a = if shape.first() {
                start_amount(rng, ns.role)
            } else {
                cur
            };
            let n = rng.gen_range(2..=20);
            (a + n <= LIMIT).then_some(())?;
            v.a = a;
            v.n = n;
            ns.value = a + n;
            ns.fit = own;
            let label = if shape == GainRel {
                ns.owner = v.other;
                ns.switched = true;
                PEOPLE[v.other].0
            } else {
                noun
            };
            vec![Operation::new(label, a, Op::Add, n)]
        }
        LossSelf | LossRel | LossFirst | LossAsk => {
            let a = if shape.first() {
                start_amount(rng, ns.role)
            } else {
                cur
            };
            (a >= 3).then_some(())?;
            let n = rng.gen_range(2..=20.min(a - 1));
            v.a = a;
            v.n = n;
            ns.value = a - n;
            let label = if shape == LossRel {
                ns.owner = v.other;
                ns.switched = true;
                ns.fit = own;
                PEOPLE[v.other].0
            } else {
                ns.fit = own_left;
                "left"
            };
            vec![Operation::new(label, a, Op::Sub, n)]
        }
        GroupsAdd | GroupsFirst | GroupsAsk => {
            let k = rng.gen_range(2..=9);
            let m = rng.gen_range(2..=12);
            v.k = k;
            v.m = m;
            let product = Operation::mul(CONTAINERS[v.container].0, m, k)?;
            ns.role = Role::Items;
            ns.fit = QI;
            if shape == GroupsAdd {
                (cur + k * m <= LIMIT).then_some(())?;
                ns.value = cur + k * m;
                vec![product, Operation::new(noun, cur, Op::Add, k * m)]
            } else {
                ns.value = k * m;
                vec![product]
            }
        }
        TimesRel | TimesSelf | TimesFirst | TimesAsk => {
            let a = if shape.first() {
                start_amount(rng, ns.role)
            } else {
                cur
            };
            two = rng.gen_bool(0.25);
            let k = if two { 2 } else { rng.gen_range(2..=5) };
            v.a = a;
            v.k = k;
            if shape != TimesSelf {
                ns.owner = v.other;
                ns.switched = true;
            }
            let op = Operation::mul(PEOPLE[ns.owner].0, a, k)?;
            ns.value = a * k;
            ns.fit = own;
            vec![op]
        }
        CompareLast | CompareFirst => {
            let a = if shape == CompareFirst {
                start_amount(rng, ns.role)
            } else {
                cur
            };
            v.a = a;
            v.big_other = rng.gen_bool(0.5);
            let d = rng.gen_range(1..=20);
            let n = if v.big_other {
                a + d
            } else {
                a.checked_sub(d).filter(|&n| n >= 1)?
            };
            (n <= LIMIT).then_some(())?;
            v.n = n;
            ns.fit = 0;
            vec![Operation::new("more", a.max(n), Op::Sub, a.min(n))]
        }
        PriceSell => {
            let r = if cur >= 10 {
                rng.gen_range(2..=9)
            } else {
                rng.gen_range(2..=15)
            };
            v.r = r;
            let op = Operation::mul("money", cur, r)?;
            ns.value = cur * r;
            ns.role = Role::Money;
            ns.fit = QE;
            vec![op]
        }
        PriceFirst | PriceAsk => {
            let (q, r) = price_pair(rng);
            v.q = q;
            v.r = r;
            let op = Operation::mul("cost", q, r)?;
            ns.value = q * r;
            ns.role = Role::Cost;
            ns.fit = QC;
            vec![op]
        }
        PriceSpend => {
            let (q, r) = price_pair(rng);
            v.q = q;
            v.r = r;
            (q * r < cur).then_some(())?;
            ns.value = cur - q * r;
            ns.fit = QML;
            vec![
                Operation::mul("cost", q, r)?,
                Operation::new("left", cur, Op::Sub, q * r),
            ]
        }
        PriceChange => {
            let bills: Vec<u64> = CURRENCIES[v.currency]
                .3
                .iter()
                .copied()
                .filter(|&b| b > cur)
                .take(2)
                .collect();
            if bills.is_empty() {
                return None;
            }
            let b = pick(rng, &bills);
            v.b = b;
            ns.value = b - cur;
            ns.role = Role::Money;
            ns.fit = QH;
            vec![Operation::new("change", b, Op::Sub, cur)]
        }
        ShareEach | ShareBags | ShareEachFirst | ShareBagsFirst => {
            let (a, k) = if shape.first() {
                let k = rng.gen_range(2..=9);
                (k * rng.gen_range(2..=12), k)
            } else {
                let ks: Vec<u64> = (2..=9).filter(|k| cur % k == 0 && cur / k >= 2).collect();
                if ks.is_empty() {
                    return None;
                }
                (cur, pick(rng, &ks))
            };
            v.a = a;
            v.k = k;
            ns.value = a / k;
            ns.fit = 0;
            let label = if matches!(shape, ShareBags | ShareBagsFirst) {
                CONTAINERS[v.container].0
            } else {
                "each"
            };
            vec![Operation::new(label, a, Op::Div, k)]
        }
    };
    if shape.terminal() {
        ns.fit = 0;
    }
    Some((Step { shape, v, two, ops }, ns))
}

fn plan<R: Rng + ?Sized>(rng: &mut R) -> Option<Plan> {
    let total_ops: usize = match rng.gen_range(0..100) {
        0..=26 => 1,
        27..=63 => 2,
        64..=87 => 3,
        _ => 4,
    };
    let role0 = if rng.gen_bool(0.2) {
        Role::Money
    } else {
        Role::Items
    };
    let owner = rng.gen_range(0..PEOPLE.len());
    let base = Vars {
        owner,
        noun: rng.gen_range(0..ITEMS_.len()),
        currency: rng.gen_range(0..CURRENCIES.len()),
        x_money: role0 != Role::Items,
        ..Vars::default()
    };
    let mut st = State {
        role: role0,
        value: 0,
        owner,
        used: vec![owner],
        fit: 0,
        switched: false,
    };
    let mut start = None;
    let mut steps: Vec<(Step, State)> = Vec::new();
    let mut n_ops = 0;
    while n_ops < total_ops {
        let first = steps.is_empty();
        let remaining = total_ops - n_ops;
        let (fused, mid) = candidates(first, remaining, st.role);
        let mut kinds: Vec<usize> = fused.iter().chain(&mid).map(|s| s.kind()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        if kinds.is_empty() {
            return None;
        }
        let mut made = None;
        for _ in 0..20 {
            let kind = pick(rng, &kinds);
            let of = |list: &[Shape]| -> Vec<Shape> {
                list.iter().copied().filter(|s| s.kind() == kind).collect()
            };
            let (f, m) = (of(&fused), of(&mid));
            let use_fused = !f.is_empty() && (m.is_empty() || rng.gen_bool(0.4));
            let shape = if use_fused {
                pick(rng, &f)
            } else {
                pick(rng, &m)
            };
            let mut from = st.clone();
            if first && !use_fused {
                from.value = start_amount(rng, role0);
            }
            let Some((step, ns)) = make_step(rng, shape, &from, &base) else {
                continue;
            };
            // A cost can only be followed by paying it.
            let max_bill = CURRENCIES[base.currency].3.last().copied().unwrap_or(0);
            let last = ops_of(shape) == remaining;
            if ns.role == Role::Cost && !last && max_bill <= ns.value {
                continue;
            }
            if first && !use_fused {
                start = Some(Vars {
                    a: from.value,
                    ..base
                });
            }
            made = Some((step, ns));
            break;
        }
        let (step, ns) = made?;
        n_ops += step.ops.len();
        st = ns.clone();
        steps.push((step, ns));
    }
    let question = (st.fit != 0).then(|| {
        (
            Vars {
                owner: st.owner,
                x_money: st.role != Role::Items,
                ..base
            },
            st.fit,
        )
    });
    Some(Plan {
        start,
        steps,
        question,
    })
}

/// Where a sentence comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    Start,
    Step(Shape),
    Question(u32),
    Distractor,
}

impl Src {
    fn list(self) -> &'static [T] {
        match self {
            Src::Start => START,
            Src::Question(_) => QUESTIONS,
            Src::Distractor => DISTRACTORS,
            Src::Step(shape) => STEPS
                .iter()
                .find(|(s, _)| *s == shape)
                .map(|(_, l)| *l)
                .unwrap_or(&[]),
        }
    }

    /// The form label's kind: the step kind or the list name.
    fn kind(self) -> &'static str {
        match self {
            Src::Start => "start",
            Src::Question(_) => "question",
            Src::Distractor => "distractor",
            Src::Step(s) => STEP_KINDS[s.kind()],
        }
    }
}

/// One sentence (or the few sentences of one template) to write.
struct Unit {
    src: Src,
    v: Vars,
    two: bool,
    /// The template may not use a pronoun (it comes before the name).
    no_pronoun: bool,
    /// The holder changes in this sentence: name them in the next one.
    switches: bool,
    /// Who holds the running quantity after this sentence.
    owner_after: usize,
    /// One person has held the quantity throughout (questions may name nobody).
    solo: bool,
}

fn has_pronoun(text: &str) -> bool {
    ["{P}", "{p}", "{o}", "{s}", "{S}"]
        .iter()
        .any(|p| text.contains(p))
}

/// Names what it counts: the noun, money, or a price.
fn has_noun(text: &str) -> bool {
    ["{X}", "{x}", "{u}", "money", "cost", "change"]
        .iter()
        .any(|p| text.contains(p))
}

impl Unit {
    /// The templates this unit may be written with, trained or held out.
    /// `strict`: right after a sentence about other objects, the sentence
    /// names its noun and says no "them".
    fn templates(&self, held: bool, strict: bool) -> Vec<&'static T> {
        let food = if self.v.x_money {
            None
        } else {
            Some(ITEMS_[self.v.noun].2)
        };
        let question = matches!(self.src, Src::Question(_));
        self.src
            .list()
            .iter()
            .filter(|t| {
                let f = t.1;
                // A flag the template carries holds here.
                let holds = |flag: u32, ok: bool| f & flag == 0 || ok;
                ((f & HELD) != 0) == held
                    && ((f & TWO) != 0) == self.two
                    && holds(ITEMS, !self.v.x_money)
                    && holds(MONEY, self.v.x_money)
                    && holds(FOOD, matches!(food, Some(FRUIT | BAKE | FOODS)))
                    && holds(PICKED, food == Some(FRUIT))
                    && holds(BAKED, food == Some(BAKE))
                    && holds(SOLO, self.solo)
                    && holds(OBIG, self.v.big_other)
                    && holds(OSMALL, !self.v.big_other)
                    && match self.src {
                        Src::Question(fit) => f & fit != 0,
                        _ => true,
                    }
                    && !(self.no_pronoun && (has_pronoun(t.0) || (question && !has_noun(t.0))))
                    && !(strict
                        && (t.0.contains("them")
                            || !(self.v.x_money
                                || has_noun(t.0)
                                || self.src == Src::Step(Shape::PriceChange))))
            })
            .collect()
    }
}

/// Fills a template. `need_name`: the first pronoun is written as the name
/// (and cleared by it or by `{N}`).
fn fill(text: &str, v: &Vars, need_name: &mut bool) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    let (name, female) = PEOPLE[v.owner];
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = i + rest[i..].find('}').unwrap_or(0);
        let key = &rest[i + 1..j];
        rest = &rest[j + 1..];
        // Only the holder's name or pronoun answers the need for a name.
        let named = matches!(key, "N" | "P" | "p" | "o" | "s" | "S") && std::mem::take(need_name);
        let pron = |she: &str, he: &str| -> String {
            if named {
                name.to_string()
            } else if female {
                she.to_string()
            } else {
                he.to_string()
            }
        };
        let poss = |her: &str, his: &str| -> String {
            if named {
                format!("{name}'s")
            } else if female {
                her.to_string()
            } else {
                his.to_string()
            }
        };
        let (big, small) = if v.big_other {
            (v.other, v.owner)
        } else {
            (v.owner, v.other)
        };
        let s = match key {
            "N" => name.to_string(),
            "P" => pron("She", "He"),
            "p" => pron("she", "he"),
            "o" => pron("her", "him"),
            "s" => poss("her", "his"),
            "S" => poss("Her", "His"),
            "O" => PEOPLE[v.other].0.to_string(),
            "A" => PEOPLE[big].0.to_string(),
            "B" => PEOPLE[small].0.to_string(),
            "D" => PEOPLE[v.dperson].0.to_string(),
            "X" if v.x_money => CURRENCIES[v.currency].0.to_string(),
            "x" if v.x_money => CURRENCIES[v.currency].1.to_string(),
            "X" => ITEMS_[v.noun].0.to_string(),
            "x" => ITEMS_[v.noun].1.to_string(),
            "Y" => ITEMS_[v.y].0.to_string(),
            "y" => ITEMS_[v.y].1.to_string(),
            "C" => CONTAINERS[v.container].0.to_string(),
            "c" => CONTAINERS[v.container].1.to_string(),
            "F" => RECIPIENTS[v.recipient].0.to_string(),
            "f" => RECIPIENTS[v.recipient].1.to_string(),
            "u" => CURRENCIES[v.currency].0.to_string(),
            "v" => CURRENCIES[v.currency].1.to_string(),
            "w" => CURRENCIES[v.currency].2.to_string(),
            "n" => v.n.to_string(),
            "a" => v.a.to_string(),
            "k" => v.k.to_string(),
            "m" => v.m.to_string(),
            "q" => v.q.to_string(),
            "r" => v.r.to_string(),
            "b" => v.b.to_string(),
            "d" => v.d.to_string(),
            "e" => v.e.to_string(),
            _ => String::new(),
        };
        out.push_str(&s);
    }
    out.push_str(rest);
    capitalize(&out)
}

/// Upper-cases the first letter of every sentence.
fn capitalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = true;
    let mut prev = ' ';
    for c in s.chars() {
        if up && c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
            up = false;
        } else {
            out.push(c);
        }
        if prev == '.' || prev == '?' {
            up = up || c == ' ';
        }
        prev = c;
    }
    out
}

fn draw<R: Rng + ?Sized>(rng: &mut R, forms: Forms) -> Option<Problem> {
    let plan = plan(rng)?;
    let owner0 = plan
        .start
        .map_or_else(|| plan.steps[0].0.v.owner, |v| v.owner);
    let mut units: Vec<Unit> = Vec::new();
    if let Some(v) = plan.start {
        units.push(Unit {
            src: Src::Start,
            v,
            two: false,
            no_pronoun: false,
            switches: false,
            owner_after: v.owner,
            solo: true,
        });
    }
    for (step, after) in &plan.steps {
        units.push(Unit {
            src: Src::Step(step.shape),
            v: step.v,
            two: step.two,
            no_pronoun: false,
            switches: after.switched,
            owner_after: after.owner,
            solo: true,
        });
    }
    if let Some((v, fit)) = plan.question {
        let mut q = Unit {
            src: Src::Question(fit),
            v,
            two: false,
            no_pronoun: true,
            switches: false,
            owner_after: v.owner,
            solo: plan.steps.iter().all(|(s, after)| after.owner == s.v.owner),
        };
        if rng.gen_bool(0.2) && !q.templates(false, false).is_empty() {
            q.owner_after = owner0;
            units.insert(0, q);
        } else {
            q.no_pronoun = false;
            units.push(q);
        }
    }
    if rng.gen_bool(0.3) {
        // After the first sentence that names the holder (after the start
        // when the question comes first), before a question at the end;
        // first only when the problem is one sentence.
        let n = units.len();
        let (lo, hi) = if matches!(units[0].src, Src::Question(_)) {
            (2, n)
        } else {
            (1, n - 1)
        };
        let pos = if lo <= hi { rng.gen_range(lo..=hi) } else { 0 };
        let mut used: Vec<usize> = plan
            .steps
            .iter()
            .flat_map(|(s, _)| [s.v.owner, s.v.other])
            .collect();
        used.push(owner0);
        let mut v = Vars {
            owner: if pos == 0 {
                owner0
            } else {
                units[pos - 1].owner_after
            },
            noun: plan.steps[0].0.v.noun,
            x_money: false,
            ..Vars::default()
        };
        v.dperson = fresh_person(rng, &mut used);
        v.y = loop {
            let y = rng.gen_range(0..ITEMS_.len());
            if y != v.noun {
                break y;
            }
        };
        v.d = rng.gen_range(3..=12);
        v.e = rng.gen_range(10..=60);
        let owner_after = v.owner;
        units.insert(
            pos,
            Unit {
                src: Src::Distractor,
                v,
                two: false,
                no_pronoun: pos == 0,
                switches: true,
                owner_after,
                solo: true,
            },
        );
    }
    // The one held-out sentence of a HeldOut problem (steps weigh double).
    let held = match forms {
        Forms::Trained => None,
        Forms::HeldOut => {
            let weights: Vec<u32> = units
                .iter()
                .map(|u| {
                    if u.templates(true, false).is_empty() {
                        0
                    } else if matches!(u.src, Src::Step(_)) {
                        2
                    } else {
                        1
                    }
                })
                .collect();
            let total: u32 = weights.iter().sum();
            if total == 0 {
                return None;
            }
            let mut x = rng.gen_range(0..total);
            let mut chosen = 0;
            for (i, w) in weights.iter().enumerate() {
                if x < *w {
                    chosen = i;
                    break;
                }
                x -= w;
            }
            Some(chosen)
        }
    };
    let mut sentences = Vec::with_capacity(units.len());
    let mut need_name = false;
    let mut other_objects = false;
    let mut just_after = false;
    for (i, u) in units.iter().enumerate() {
        let strict = just_after || (other_objects && matches!(u.src, Src::Question(_)));
        let list = u.templates(held == Some(i), strict);
        if list.is_empty() {
            return None;
        }
        let t = pick(rng, &list);
        sentences.push(fill(t.0, &u.v, &mut need_name));
        need_name = u.switches;
        just_after = u.src == Src::Distractor && t.0.contains("{Y}");
        other_objects |= just_after;
    }
    let ops: Vec<&Operation> = plan.steps.iter().flat_map(|(s, _)| &s.ops).collect();
    let mut think = Vec::with_capacity(ops.len());
    let mut answer = String::new();
    for o in ops {
        let (text, value) = worked(o.a, o.op, o.b)?;
        think.push(format!("{} {text}", o.label));
        answer = value.to_string();
    }
    let kind = match held {
        Some(i) => units[i].src.kind(),
        None => STEP_KINDS[plan.steps[0].0.shape.kind()],
    };
    Some(Problem {
        task: TaskKind::Word,
        problem: sentences.join(" "),
        think: think.join("; "),
        answer,
        form: format!("word:{kind}"),
    })
}

/// A word problem. [`Forms::Trained`]: only trained templates;
/// [`Forms::HeldOut`]: exactly one sentence (a step, the start, the question
/// or a distractor) from a held-out template, named by `form`
/// (`word:<kind>`, `word:start`, `word:question`, `word:distractor`;
/// trained problems are labelled with the kind of their first step).
pub fn sample<R: Rng + ?Sized>(rng: &mut R, forms: Forms) -> Problem {
    loop {
        if let Some(p) = draw(rng, forms) {
            if crate::sample_chunks(&p) <= MAX_CHUNKS {
                return p;
            }
        }
    }
}

/// One template, for reports and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateRef {
    /// A step kind of [`STEP_KINDS`], or `start`, `question`, `distractor`.
    pub list: &'static str,
    pub text: &'static str,
    pub held_out: bool,
}

/// Every template: the step kinds in [`STEP_KINDS`] order, then the start,
/// question and distractor sentences.
pub fn all_templates() -> Vec<TemplateRef> {
    let mut out = Vec::new();
    for (kind, name) in STEP_KINDS.iter().enumerate() {
        for (shape, list) in STEPS {
            if shape.kind() == kind {
                out.extend(list.iter().map(|t| TemplateRef {
                    list: name,
                    text: t.0,
                    held_out: t.1 & HELD != 0,
                }));
            }
        }
    }
    for src in [Src::Start, Src::Question(0), Src::Distractor] {
        out.extend(src.list().iter().map(|t| TemplateRef {
            list: src.kind(),
            text: t.0,
            held_out: t.1 & HELD != 0,
        }));
    }
    out
}

/// `(list, trained templates, held-out templates)`: the seven step kinds in
/// [`STEP_KINDS`] order, then `start`, `question` and `distractor`.
pub fn template_counts() -> Vec<(&'static str, usize, usize)> {
    let all = all_templates();
    let mut names: Vec<&'static str> = STEP_KINDS.to_vec();
    names.extend(["start", "question", "distractor"]);
    names
        .into_iter()
        .map(|name| {
            let of = all.iter().filter(|t| t.list == name);
            let held = of.clone().filter(|t| t.held_out).count();
            (name, of.count() - held, held)
        })
        .collect()
}

/// The templates whose sentences occur in `problem`, found by matching each
/// template (its placeholders against the word lists and digit runs) at
/// every sentence start: independent of how the problem was generated.
pub fn templates_in(problem: &str) -> Vec<TemplateRef> {
    let s = problem.as_bytes();
    let class = word_classes(s);
    let mut starts = vec![0];
    for i in 1..s.len() {
        if s[i] == b' ' && matches!(s[i - 1], b'.' | b'?') {
            starts.push(i + 1);
        }
    }
    all_templates()
        .into_iter()
        .filter(|t| {
            starts
                .iter()
                .any(|&i| matches_at(t.text.as_bytes(), s, i, &class))
        })
        .collect()
}

/// Whether a held-out template's sentence occurs in the problem.
pub fn uses_held_out(p: &Problem) -> bool {
    templates_in(&p.problem).iter().any(|t| t.held_out)
}

/// The word lists placeholders match, one bit each.
const W_NAME: u32 = 1;
const W_SHE: u32 = 1 << 1;
const W_HIM: u32 = 1 << 2;
const W_HIS: u32 = 1 << 3;
const W_X: u32 = 1 << 4;
const W_XS: u32 = 1 << 5;
const W_Y: u32 = 1 << 6;
const W_YS: u32 = 1 << 7;
const W_C: u32 = 1 << 8;
const W_CS: u32 = 1 << 9;
const W_F: u32 = 1 << 10;
const W_FS: u32 = 1 << 11;
const W_U: u32 = 1 << 12;
const W_V: u32 = 1 << 13;
const W_W: u32 = 1 << 14;

/// The lists a word belongs to.
fn word_class(word: &[u8]) -> u32 {
    let is = |w: &str| word.eq_ignore_ascii_case(w.as_bytes());
    let mut c = 0;
    let mut add = |bit: u32, hit: bool| {
        if hit {
            c |= bit;
        }
    };
    add(W_NAME, PEOPLE.iter().any(|p| is(p.0)));
    add(W_SHE, is("she") || is("he"));
    add(W_HIM, is("her") || is("him"));
    add(W_HIS, is("her") || is("his"));
    add(W_Y, ITEMS_.iter().any(|i| is(i.0)));
    add(W_YS, ITEMS_.iter().any(|i| is(i.1)));
    add(W_C, CONTAINERS.iter().any(|x| is(x.0)));
    add(W_CS, CONTAINERS.iter().any(|x| is(x.1)));
    add(W_F, RECIPIENTS.iter().any(|x| is(x.0)));
    add(W_FS, RECIPIENTS.iter().any(|x| is(x.1)));
    add(W_U, CURRENCIES.iter().any(|x| is(x.0)));
    add(W_V, CURRENCIES.iter().any(|x| is(x.1)));
    add(W_W, CURRENCIES.iter().any(|x| is(x.2)));
    if c & (W_Y | W_U) != 0 {
        c |= W_X;
    }
    if c & (W_YS | W_V) != 0 {
        c |= W_XS;
    }
    c
}

/// The class of the word that starts at each byte of `s` (0 elsewhere).
fn word_classes(s: &[u8]) -> Vec<u32> {
    let mut class = vec![0; s.len()];
    for i in 0..s.len() {
        if s[i].is_ascii_alphabetic() && (i == 0 || !s[i - 1].is_ascii_alphabetic()) {
            let n = s[i..]
                .iter()
                .take_while(|b| b.is_ascii_alphabetic())
                .count();
            class[i] = word_class(&s[i..i + n]);
        }
    }
    class
}

/// Length of the placeholder `key` matched at `s[i..]`.
fn slot_len(key: &[u8], s: &[u8], i: usize, class: &[u32]) -> Option<usize> {
    let rest = &s[i..];
    if let [b'n' | b'a' | b'k' | b'm' | b'q' | b'r' | b'b' | b'd' | b'e'] = key {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        return (digits > 0).then_some(digits);
    }
    let c = *class.get(i)?;
    let letters = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let mask = match key {
        b"N" | b"O" | b"A" | b"B" | b"D" => W_NAME,
        b"P" | b"p" => W_SHE | W_NAME,
        b"o" => W_HIM | W_NAME,
        b"s" | b"S" => {
            if c & W_NAME != 0 && rest[letters..].starts_with(b"'s") {
                return Some(letters + 2);
            }
            W_HIS
        }
        b"X" => W_X,
        b"x" => W_XS,
        b"Y" => W_Y,
        b"y" => W_YS,
        b"C" => W_C,
        b"c" => W_CS,
        b"F" => W_F,
        b"f" => W_FS,
        b"u" => W_U,
        b"v" => W_V,
        b"w" => W_W,
        _ => 0,
    };
    (c & mask != 0).then_some(letters)
}

/// Whether template `t` matches `s` from byte `i` up to a sentence end (the
/// end of `s` or a space); `class` from [`word_classes`].
fn matches_at(mut t: &[u8], s: &[u8], mut i: usize, class: &[u32]) -> bool {
    loop {
        match t.first() {
            None => return i == s.len() || s[i] == b' ',
            Some(b'{') => {
                let Some(close) = t.iter().position(|&b| b == b'}') else {
                    return false;
                };
                let Some(len) = slot_len(&t[1..close], s, i, class) else {
                    return false;
                };
                t = &t[close + 1..];
                i += len;
            }
            Some(&c) => {
                if s.get(i).map(|b| b.to_ascii_lowercase()) != Some(c.to_ascii_lowercase()) {
                    return false;
                }
                t = &t[1..];
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(text: &str) -> Vec<&str> {
        text.split('{')
            .skip(1)
            .map(|p| p.split('}').next().unwrap_or(""))
            .collect()
    }

    #[test]
    fn every_template_uses_exactly_its_numbers() {
        for (shape, list) in STEPS {
            for t in *list {
                let mut want: Vec<char> = shape.numbers().chars().collect();
                if t.1 & TWO != 0 {
                    want.retain(|&c| c != 'k');
                }
                let mut got: Vec<char> = placeholders(t.0)
                    .iter()
                    .filter(|p| "nakmqrbde".contains(**p))
                    .filter_map(|p| p.chars().next())
                    .collect();
                got.sort_unstable();
                got.dedup();
                want.sort_unstable();
                assert_eq!(got, want, "{shape:?}: {}", t.0);
            }
        }
        for t in START {
            assert!(placeholders(t.0).contains(&"a"), "{}", t.0);
        }
        for t in QUESTIONS.iter().chain(DISTRACTORS) {
            assert!(
                placeholders(t.0).iter().all(|p| !"nakmqrb".contains(*p)),
                "{}",
                t.0
            );
        }
    }

    #[test]
    fn every_placeholder_is_known_and_matched() {
        let v = Vars {
            noun: 3,
            y: 5,
            n: 12,
            a: 34,
            k: 5,
            m: 7,
            q: 8,
            r: 9,
            b: 50,
            d: 4,
            e: 40,
            other: 30,
            dperson: 31,
            ..Vars::default()
        };
        for t in all_templates() {
            for p in placeholders(t.text) {
                assert!(
                    "NPposSOABDXxYyCcFfuvwnakmqrbde".contains(p) && p.len() == 1,
                    "{p} in {}",
                    t.text
                );
            }
            for need_name in [false, true] {
                let filled = fill(t.text, &v, &mut need_name.clone());
                let bytes = filled.as_bytes();
                assert!(
                    matches_at(t.text.as_bytes(), bytes, 0, &word_classes(bytes)),
                    "{} does not match its own {filled}",
                    t.text
                );
            }
        }
    }

    /// Every combination the planner can ask for has a trained template.
    #[test]
    fn every_combination_has_a_trained_template() {
        use Shape::*;
        for (shape, _) in STEPS {
            for x_money in [false, true] {
                let noun_only = matches!(
                    shape,
                    GroupsAdd
                        | GroupsFirst
                        | GroupsAsk
                        | PriceSell
                        | PriceFirst
                        | PriceAsk
                        | ShareBags
                        | ShareBagsFirst
                );
                let money_only = matches!(shape, PriceSpend | PriceChange);
                if (x_money && noun_only) || (!x_money && money_only) {
                    continue;
                }
                let times = matches!(shape, TimesRel | TimesSelf | TimesFirst | TimesAsk);
                for two in [false, true] {
                    if two && !times {
                        continue;
                    }
                    for big_other in [false, true] {
                        for noun in [0, 10, 11, 20] {
                            let u = Unit {
                                src: Src::Step(*shape),
                                v: Vars {
                                    x_money,
                                    big_other,
                                    noun,
                                    ..Vars::default()
                                },
                                two,
                                no_pronoun: false,
                                switches: false,
                                owner_after: 0,
                                solo: false,
                            };
                            for strict in [false, true] {
                                assert!(
                                    !u.templates(false, strict).is_empty(),
                                    "{shape:?} money {x_money} two {two} food {} strict {strict}",
                                    ITEMS_[noun].2
                                );
                            }
                        }
                    }
                }
            }
        }
        for fit in [QI, QIL, QM, QML, QE, QC, QH] {
            for no_pronoun in [false, true] {
                let u = Unit {
                    src: Src::Question(fit),
                    v: Vars::default(),
                    two: false,
                    no_pronoun,
                    switches: false,
                    owner_after: 0,
                    solo: false,
                };
                for strict in [false, true] {
                    assert!(!u.templates(false, strict).is_empty(), "question {fit:b}");
                }
            }
        }
    }
}
