//! The sentence templates of the word problems, one list per shape of step
//! plus the start, question and distractor lists.
//!
//! Placeholders (each stands for one word or one number):
//!
//! | placeholder | replaced by |
//! |---|---|
//! | `{N}` | the person who holds the running quantity (a name) |
//! | `{P}` `{p}` `{o}` `{s}` `{S}` | that person's pronoun: She/she, her/him, her/his, Her/His (the name, or `Mia's`, right after the subject changed or a distractor) |
//! | `{O}` | another person (the giver, the other side of a comparison, the new holder) |
//! | `{A}` `{B}` | of the owner and `{O}`: the one with more, the one with fewer (comparisons) |
//! | `{D}` | a person who appears only in a distractor |
//! | `{X}` `{x}` | the running quantity's noun, plural and singular (`pens`, `dollars`) |
//! | `{Y}` `{y}` | another object (a distractor's, or what a purchase buys) |
//! | `{C}` `{c}` | a container (`bags`, `bag`) |
//! | `{F}` `{f}` | people who share (`friends`, `friend`) |
//! | `{u}` `{v}` `{w}` | the currency (`dollars`, `dollar`) and its bill (`bill`) |
//! | `{a}` | the starting amount (templates that also start the problem) |
//! | `{n}` | the amount gained, lost or compared with |
//! | `{k}` `{m}` | a one-digit factor or divisor; the size of each group |
//! | `{q}` `{r}` `{b}` | a quantity bought, a unit price, a bill paid with |
//! | `{d}` `{e}` | a distractor's small and larger number |
//!
//! Held-out templates ([`HELD`]) are never used for `Forms::Trained`; each
//! reuses the words of trained templates of its list (a held-out `{P} eats
//! {n} {X}.` next to the trained `{P} eats {n}.` and `{N} eats {n} {X} for
//! lunch.`), so the out-of-template test measures reading a new sentence,
//! not guessing a new word.

/// One template: text and flags.
#[derive(Clone, Copy, Debug)]
pub struct T(pub &'static str, pub u32);

/// Never used for `Forms::Trained`.
pub const HELD: u32 = 1;
/// Only when the running quantity is objects (not money).
pub const ITEMS: u32 = 1 << 1;
/// Only when the running quantity is money.
pub const MONEY: u32 = 1 << 2;
/// Only when the objects are food (eats, bakes, picks).
pub const FOOD: u32 = 1 << 3;
/// "twice" / "double": the factor is 2 and is not written as a digit.
pub const TWO: u32 = 1 << 4;
/// Only for fruit and vegetables (picks) / baked food (bakes).
pub const PICKED: u32 = 1 << 16;
pub const BAKED: u32 = 1 << 17;
/// Questions that name nobody ("How many are left?"): only while one
/// person has held the quantity throughout.
pub const SOLO: u32 = 1 << 18;
/// Comparison templates that need `{O}` to have more / fewer than the owner.
pub const OBIG: u32 = 1 << 5;
pub const OSMALL: u32 = 1 << 6;

/// Question fits: which running quantity a question may ask about.
pub const QI: u32 = 1 << 8; // objects
pub const QIL: u32 = 1 << 9; // objects, right after some were taken away
pub const QM: u32 = 1 << 10; // money
pub const QML: u32 = 1 << 11; // money, right after some was spent
pub const QE: u32 = 1 << 12; // money made by selling
pub const QC: u32 = 1 << 13; // a cost to pay
pub const QH: u32 = 1 << 14; // change from a bill
const QOWN: u32 = QI | QIL | QM | QML;

/// The shapes of step: what a template says and which operations it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The holder gets `n` more: `cur+n`.
    GainSelf,
    /// `{O}` has `n` more than the holder and becomes the holder: `cur+n`.
    GainRel,
    /// Starts the problem: `{N}` has `a` and gets `n` more: `a+n`.
    GainFirst,
    /// The whole one-step problem as a question: `a+n`.
    GainAsk,
    /// The holder loses `n`: `cur-n`.
    LossSelf,
    /// `{O}` has `n` fewer and becomes the holder: `cur-n`.
    LossRel,
    LossFirst,
    LossAsk,
    /// `k` containers of `m` more: `m*k`, then `cur+m·k`.
    GroupsAdd,
    /// Starts the problem with `k` containers of `m`: `m*k`.
    GroupsFirst,
    GroupsAsk,
    /// `{O}` has `k` times as many and becomes the holder: `cur*k`.
    TimesRel,
    /// The holder comes to have `k` times as many: `cur*k`.
    TimesSelf,
    TimesFirst,
    TimesAsk,
    /// Last: `{O}` has `n`; how many more does one have: larger minus smaller.
    CompareLast,
    /// The whole one-step comparison: `a` against `n`.
    CompareFirst,
    /// The holder sells the objects at `r` each: `cur*r`, money made.
    PriceSell,
    /// Starts the problem: `q` things at `r` each: `q*r`, a cost.
    PriceFirst,
    PriceAsk,
    /// The holder (money) buys `q` things at `r` each: `q*r`, then `cur-q·r`.
    PriceSpend,
    /// Pays a cost with a bill of `b`: `b-cost`, the change.
    PriceChange,
    /// Last: shares the running quantity among `k`: `cur/k` each.
    ShareEach,
    /// Last: packs the running quantity `k` to a container: `cur/k` containers.
    ShareBags,
    ShareEachFirst,
    ShareBagsFirst,
}

/// Every shape with its templates, grouped by kind of step (the kind is the
/// first word of the shape's name, see `Shape::kind`).
pub const STEPS: &[(Shape, &[T])] = &[
    (Shape::GainSelf, GAIN_SELF),
    (Shape::GainRel, GAIN_REL),
    (Shape::GainFirst, GAIN_FIRST),
    (Shape::GainAsk, GAIN_ASK),
    (Shape::LossSelf, LOSS_SELF),
    (Shape::LossRel, LOSS_REL),
    (Shape::LossFirst, LOSS_FIRST),
    (Shape::LossAsk, LOSS_ASK),
    (Shape::GroupsAdd, GROUPS_ADD),
    (Shape::GroupsFirst, GROUPS_FIRST),
    (Shape::GroupsAsk, GROUPS_ASK),
    (Shape::TimesRel, TIMES_REL),
    (Shape::TimesSelf, TIMES_SELF),
    (Shape::TimesFirst, TIMES_FIRST),
    (Shape::TimesAsk, TIMES_ASK),
    (Shape::CompareLast, COMPARE_LAST),
    (Shape::CompareFirst, COMPARE_FIRST),
    (Shape::PriceSell, PRICE_SELL),
    (Shape::PriceFirst, PRICE_FIRST),
    (Shape::PriceAsk, PRICE_ASK),
    (Shape::PriceSpend, PRICE_SPEND),
    (Shape::PriceChange, PRICE_CHANGE),
    (Shape::ShareEach, SHARE_EACH),
    (Shape::ShareBags, SHARE_BAGS),
    (Shape::ShareEachFirst, SHARE_EACH_FIRST),
    (Shape::ShareBagsFirst, SHARE_BAGS_FIRST),
];

const H: u32 = HELD;
const I: u32 = ITEMS;
const M: u32 = MONEY;
const F: u32 = FOOD;
const PK: u32 = PICKED;
const BK: u32 = BAKED;

pub const START: &[T] = &[
    T("{N} has {a} {X}.", 0),
    T("{N} owns {a} {X}.", I),
    T("There are {a} {X} in {N}'s bag.", I),
    T("{N} starts with {a} {X}.", 0),
    T("{N} had {a} {X}.", 0),
    T("{N} has collected {a} {X}.", I),
    T("{N}'s box holds {a} {X}.", I),
    T("{N} keeps {a} {X} in a jar.", 0),
    T("At first, {N} has {a} {X}.", 0),
    T("{N} has {a} {X} at home.", I),
    T("{N} counts {a} {X} in {s} room.", I),
    T("{N} runs a shop with {a} {X}.", I),
    T("{N} got {a} {X} last week.", 0),
    T("{N} brings {a} {X} to school.", I),
    T("{N} picks {a} {X}.", PK),
    T("{N} bakes {a} {X}.", BK),
    T("{N} has saved {a} {X}.", M),
    T("{N} has {a} {X} in {s} wallet.", M),
    T("There are {a} {X} in {N}'s piggy bank.", M),
    T("{N} gets {a} {X} for {s} birthday.", 0),
    T("{N} earned {a} {X} last week.", M),
    T("Yesterday {N} had {a} {X}.", 0),
    T("On Monday, {N} collected {a} {X}.", I),
    T("{N} has a basket of {a} {X}.", I),
    T("{N} found {a} {X}.", I),
    T("{N} was given {a} {X}.", 0),
    T("There were {a} {X} in {N}'s box.", I),
    T("{N} received {a} {X} from {s} aunt.", 0),
    T("To begin with, {N} has {a} {X}.", 0),
    T("{N}'s jar has {a} {X} in it.", 0),
    T("{N} made {a} {X} last month.", M),
    T("In the morning {N} has {a} {X}.", 0),
    T("{N} has a bag with {a} {X} in it.", H | I),
    T("In {N}'s room there are {a} {X}.", H | I),
    T("{N} bought {a} {X}.", H | I),
    T("{N} has {a} {X} in {s} pocket.", H | M),
    T("Last week {N} earned {a} {X}.", H | M),
];

pub const QUESTIONS: &[T] = &[
    T("How many {X} does {N} have now?", QOWN),
    T("How many {X} does {p} have now?", QOWN),
    T("How many {X} does {N} have in all?", QI | QM),
    T("How many {X} does {N} have altogether?", QI | QM),
    T("How many {X} does {N} have left?", QIL | QML),
    T("How many {X} are left?", QIL | SOLO),
    T("How many are left?", QIL | SOLO),
    T("How many does {p} have left?", QIL | QML),
    T("How many {X} does {N} end up with?", QOWN),
    T("What is the total number of {X} {N} has?", QI),
    T("How many {X} does {N} have?", QOWN),
    T("How many {X} does {p} have in total?", QI | QM),
    T("Find the number of {X} {N} has now.", QI | QIL),
    T("How many {X} remain?", QIL | SOLO),
    T("How many {X} are there now?", QI | QIL | SOLO),
    T("How much money does {N} have now?", QM | QML),
    T("How much money does {N} have left?", QML),
    T("How much money is left?", QML | SOLO),
    T("How much money does {N} make?", QE),
    T("How many {u} does {N} earn?", QE),
    T("How much does {N} get for them?", QE),
    T("How much does {N} pay?", QC),
    T("How much does {N} spend?", QC),
    T("How many {u} does {p} spend?", QC),
    T("What is the total cost?", QC | SOLO),
    T("How much money does {N} need?", QC),
    T("How much change does {N} get?", QH),
    T("How much change does {p} get back?", QH),
    T("How many {u} does {N} get back?", QH),
    T("What is {s} change?", QH),
    T("How many {X} does {N} have at the end?", H | QOWN),
    T("How many {X} are left now?", H | QIL | SOLO),
    T("How many {X} does {N} have in total now?", H | QI | QM),
    T("How much does {N} pay in all?", H | QC),
    T("How much money does {N} get back?", H | QH),
];

pub const DISTRACTORS: &[T] = &[
    T("{N} is {d} years old.", 0),
    T("It is {d} o'clock.", 0),
    T("{S} brother has {e} {Y}.", 0),
    T("{D} has {e} {Y}.", 0),
    T("{S} sister is {d} years old.", 0),
    T("{N} lives at number {e}.", 0),
    T("There are {e} {Y} on the table.", 0),
    T("{N}'s school has {e} classrooms.", 0),
    T("{D} is {d} years old.", 0),
    T("The shop opens at {d} o'clock.", 0),
    T("{S} friend {D} has {e} {Y}.", 0),
    T("{N}'s dog is {d} years old.", 0),
    T("The bus ride takes {e} minutes.", 0),
    T("{D} owns {e} {Y}.", 0),
    T("{N} walks {d} blocks to school.", 0),
    T("The store is {e} meters away.", 0),
    T("{S} teacher is {e} years old.", 0),
    T("{D} reads {e} pages of a book.", 0),
    T("The park has {e} trees.", 0),
    T("{N} sleeps for {d} hours.", 0),
    T("It is {e} degrees outside.", 0),
    T("{D} sees {e} birds in the sky.", 0),
    T("{N}'s house has {d} windows.", 0),
    T("The trip takes {e} minutes.", 0),
    T("{S} uncle owns {e} {Y}.", 0),
    T("{D} collects {e} {Y}.", 0),
    T("The game lasts {e} minutes.", 0),
    T("{N} is in grade {d}.", 0),
    T("The library has {e} books.", 0),
    T("{N}'s bike has {d} gears.", 0),
    T("{S} neighbor has {e} {Y}.", 0),
    T("The train leaves at {d} o'clock.", 0),
    T("{N} ran {d} miles yesterday.", 0),
    T("{S} cousin has {e} {Y}.", H),
    T("{N}'s cat is {d} years old.", H),
    T("The walk home takes {e} minutes.", H),
    T("{S} aunt is {d} years old.", H),
];

const GAIN_SELF: &[T] = &[
    T("{P} buys {n} more {X}.", I),
    T("{P} buys {n} more.", I),
    T("{P} finds {n} more {X}.", 0),
    T("{P} gets {n} more {X} from {O}.", 0),
    T("{O} gives {o} {n} more {X}.", 0),
    T("{O} gives {o} {n} {X}.", 0),
    T("{P} wins {n} more {X}.", 0),
    T("{P} is given {n} more {X}.", 0),
    T("{P} picks up {n} more {X}.", I),
    T("Then {p} buys {n} more {X}.", I),
    T("Later, {p} finds {n} more.", 0),
    T("{S} mom gives {o} {n} more {X}.", 0),
    T("{P} bought {n} more {X}.", I),
    T("{P} adds {n} {X} to {s} collection.", I),
    T("{P} receives {n} {X} as a gift.", 0),
    T("The next day {p} gets {n} more.", 0),
    T("{O} brings {o} another {n} {X}.", 0),
    T("{P} bakes {n} more {X}.", BK),
    T("{P} picks {n} more {X}.", PK),
    T("{P} earns {n} more {X}.", M),
    T("{S} dad gives {o} {n} {X}.", 0),
    T("{P} saves {n} more {X}.", M),
    T("{P} finds {n} {X} on the street.", M),
    T("{P} gets another {n} {X}.", H),
    T("{O} hands {o} {n} more {X}.", H),
    T("After that, {p} buys {n} more {X}.", H | I),
    T("{P} earns another {n} {X}.", H | M),
];

const GAIN_REL: &[T] = &[
    T("{O} has {n} more {X} than {N}.", 0),
    T("{O} has {n} more {X} than {p} does.", 0),
    T("{O} owns {n} {X} more than {N}.", 0),
    T("{O} has {n} more than {N}.", 0),
    T("{O} has {n} {X} more than {p} does.", 0),
    T("{O} owns {n} more {X} than {N}.", 0),
    T("{O} has {n} more {X} than {N} has.", 0),
    T("{O} collected {n} more {X} than {N}.", 0),
    T("{O} has {n} {X} more than {N}.", H),
];

const GAIN_FIRST: &[T] = &[
    T("{N} has {a} {X} and buys {n} more.", I),
    T("{N} had {a} {X}, then got {n} more.", 0),
    T("{N} starts with {a} {X} and wins {n} more.", 0),
    T("{N} earns {a} {X} on Monday and {n} {X} on Tuesday.", M),
    T(
        "{N} picks {a} {X} in the morning and {n} more in the afternoon.",
        PK,
    ),
    T("{N} has {a} {X}, and {O} gives {o} {n} more.", 0),
    T("{N} had {a} {X} and was given {n} more.", 0),
    T("{N} owns {a} {X} and then gets {n} more.", 0),
    T("{N} has {a} {X}. {P} gets {n} more.", 0),
    T("{N} has {a} {X} and finds {n} more.", H),
];

const GAIN_ASK: &[T] = &[
    T(
        "How many {X} does {N} have if {p} has {a} and buys {n} more?",
        I,
    ),
    T(
        "If {N} has {a} {X} and gets {n} more, how many does {p} have?",
        0,
    ),
    T(
        "{N} had {a} {X} and found {n} more. How many {X} does {p} have now?",
        0,
    ),
    T(
        "If {N} has {a} {X} and finds {n} more, how many {X} does {p} have?",
        H,
    ),
];

const LOSS_SELF: &[T] = &[
    T("{P} gives away {n}.", 0),
    T("{P} gives {n} to {O}.", 0),
    T("{P} gives {n} {X} to {O}.", 0),
    T("{P} eats {n}.", F),
    T("{P} eats {n} of them.", F),
    T("{P} sells {n} {X}.", I),
    T("{P} sells {n} of them.", I),
    T("{P} loses {n}.", 0),
    T("{P} loses {n} {X}.", 0),
    T("{P} drops and breaks {n} {X}.", I),
    T("Then {p} gives away {n} {X}.", 0),
    T("{O} takes {n} of {s} {X}.", 0),
    T("{P} uses {n} {X}.", I),
    T("{P} uses {n} of them for a project.", I),
    T("{N}'s dog eats {n} of the {X}.", F),
    T("{P} gave {n} {X} to {s} friend.", 0),
    T("{P} sold {n} of them.", I),
    T("After that, {p} loses {n} of them.", 0),
    T("{P} trades {n} {X} for a toy.", I),
    T("{N} eats {n} {X} for lunch.", F),
    T("{P} spends {n} {X}.", M),
    T("{P} spends {n} {X} on lunch.", M),
    T("{P} pays {n} {X} for a book.", M),
    T("{P} gives {n} {X} to charity.", 0),
    T("{P} loses {n} {X} on the way home.", 0),
    T("{P} eats {n} {X}.", H | F),
    T("{P} gives {O} {n} of them.", H),
    T("{P} sells {n} {X} at the market.", H | I),
    T("{P} spends {n} {X} on a book.", H | M),
];

const LOSS_REL: &[T] = &[
    T("{O} has {n} fewer {X} than {N}.", 0),
    T("{O} has {n} {X} fewer than {N}.", 0),
    T("{O} has {n} fewer than {p} does.", 0),
    T("{O} owns {n} fewer {X} than {N}.", 0),
    T("{O} has {n} fewer than {N}.", 0),
    T("{O} has {n} fewer {X} than {N} has.", 0),
    T("{O} collected {n} fewer {X} than {N}.", 0),
    T("{O} has {n} fewer {X} than {p} does.", H),
];

const LOSS_FIRST: &[T] = &[
    T("{N} has {a} {X} and eats {n}.", F),
    T("{N} had {a} {X} but lost {n}.", 0),
    T("{N} has {a} {X} and gives {n} to {O}.", 0),
    T("{N} has {a} {X} and spends {n}.", M),
    T("{N} bakes {a} {X} and sells {n}.", BK),
    T("{N} buys {a} {X} and uses {n}.", I),
    T("{N} had {a} {X} and gave {n} away.", 0),
    T("{N} has {a} {X} but loses {n} of them.", 0),
    T("{N} owns {a} {X} and gives away {n}.", 0),
    T("{N} has {a} {X} and sells {n}.", H | I),
];

const LOSS_ASK: &[T] = &[
    T(
        "How many {X} does {N} have left if {p} has {a} and gives away {n}?",
        0,
    ),
    T("If {N} has {a} {X} and eats {n}, how many are left?", F),
    T(
        "{N} had {a} {X} and lost {n}. How many {X} does {p} have now?",
        0,
    ),
    T("If {N} has {a} {X} and loses {n}, how many are left?", H),
];

const GROUPS_ADD: &[T] = &[
    T("{P} buys {k} {C} with {m} {X} in each.", 0),
    T("{P} buys {k} {C} of {m} {X}.", 0),
    T("{P} gets {k} {C} with {m} {X} each.", 0),
    T("{P} buys {k} more {C}, each with {m} {X}.", 0),
    T("{O} gives {o} {k} {C} with {m} {X} in each.", 0),
    T("{P} finds {k} {C} that hold {m} {X} each.", 0),
    T("Then {p} buys {k} {C} of {X} with {m} in each.", 0),
    T("{P} adds {k} {C} of {m} {X} to {s} collection.", 0),
    T("{P} buys {k} {C}. Each {c} has {m} {X}.", 0),
    T("{P} picks {k} {C} of {X}, {m} per {c}.", PK),
    T("{P} wins {k} {C} with {m} {X} per {c}.", 0),
    T("{S} aunt sends {o} {k} {C} of {m} {X}.", 0),
    T("{P} also buys {k} {C} with {m} {X} in each.", 0),
    T("{P} brings home {k} {C} of {m} {X} each.", 0),
    T("{P} buys {k} {C} that have {m} {X} each.", H),
    T("{P} gets {k} {C}. Each {c} holds {m} {X}.", H),
];

const GROUPS_FIRST: &[T] = &[
    T("{N} has {k} {C} with {m} {X} in each.", 0),
    T("{N} has {k} {C} of {X}. Each {c} holds {m}.", 0),
    T("{N} buys {k} {C} of {X}. There are {m} {X} in each {c}.", 0),
    T("Each {c} holds {m} {X}. {N} has {k} {C}.", 0),
    T("There are {k} {C} with {m} {X} each in {N}'s room.", 0),
    T("{N} fills {k} {C} with {m} {X} each.", 0),
    T("{N} packs {m} {X} into each of {k} {C}.", 0),
    T("A {c} holds {m} {X}. {N} buys {k} {C}.", 0),
    T("{N} has {k} {C}, and each {c} has {m} {X} in it.", 0),
    T("{N} bought {k} {C} of {X} with {m} in each {c}.", 0),
    T("{N} sets out {k} {C} with {m} {X} per {c}.", 0),
    T("{N} has {m} {X} in each of {s} {k} {C}.", 0),
    T("{N} has {k} {C}. In each {c} there are {m} {X}.", 0),
    T("{N} lines up {k} {C} with {m} {X} in each.", 0),
    T("{N} has {k} {C}, each with {m} {X}.", H),
    T("There are {m} {X} in each of {N}'s {k} {C}.", H),
    T("Each {c} has {m} {X}. {N} buys {k} {C}.", H),
];

const GROUPS_ASK: &[T] = &[
    T(
        "How many {X} does {N} have if {p} has {k} {C} with {m} {X} in each?",
        0,
    ),
    T("How many {X} are in {k} {C} if each {c} holds {m}?", 0),
    T("If a {c} holds {m} {X}, how many {X} are in {k} {C}?", 0),
    T(
        "If {N} buys {k} {C} of {m} {X}, how many {X} does {p} buy?",
        0,
    ),
    T("How many {X} are in {k} {C} with {m} {X} in each?", H),
];

const TIMES_REL: &[T] = &[
    T("{O} has {k} times as many {X} as {N}.", 0),
    T("{O} has {k} times as many {X} as {p} does.", 0),
    T("{O} owns {k} times as many {X} as {N}.", 0),
    T("{O} collects {k} times as many {X} as {N}.", I),
    T("{O} has {k} times the number of {X} that {N} has.", 0),
    T("{N}'s friend {O} has {k} times as many.", 0),
    T("{O} has {k} times as many as {N}.", 0),
    T("{O}'s box holds {k} times as many {X} as {N}'s.", I),
    T("{O} earns {k} times as much as {N}.", M),
    T("{O} saved {k} times as many {X} as {N}.", M),
    T("{O} has {k} times as many {X} as {N} now has.", 0),
    T("{O} has {k} times more {X} than {N}.", 0),
    T("{O} ends up with {k} times as many {X} as {N}.", 0),
    T("Compared with {N}, {O} has {k} times as many {X}.", 0),
    T("{O} has {k} times {N}'s number of {X}.", 0),
    T("{O} gathers {k} times as many {X} as {N} did.", I),
    T("{O} has twice as many {X} as {N}.", TWO),
    T("{O} has twice as many as {p} does.", TWO),
    T("{O} has double the number of {X} that {N} has.", TWO),
    T("{O} earns twice as much as {N}.", TWO | M),
    T("{O} has twice as many.", TWO),
    T("{O} has {k} times as many {X} as {N} has.", H),
    T("{O} collects twice as many {X} as {N}.", H | TWO | I),
];

const TIMES_SELF: &[T] = &[
    T("A month later, {N} has {k} times as many {X}.", 0),
    T("{P} then has {k} times as many {X} as before.", 0),
    T("Next year {p} will have {k} times as many.", 0),
    T("By summer, {N} has {k} times as many {X} as before.", 0),
    T(
        "After a year, {N} has {k} times as many {X} as at the start.",
        0,
    ),
    T("Soon {N} has {k} times the {X} {p} had.", 0),
    T("{S} {X} grow to {k} times as many.", 0),
    T("{N} doubles {s} {X}.", TWO),
    T("{P} doubles the number of {X}.", TWO),
    T("The number of {N}'s {X} doubles.", TWO),
    T("{P} then has twice as many {X} as before.", TWO),
    T("Later, {N} has {k} times as many {X} as before.", H),
    T("{P} doubles the number of {X} {p} has.", H | TWO),
];

const TIMES_FIRST: &[T] = &[
    T("{N} has {a} {X}, and {O} has {k} times as many.", 0),
    T("{O} has {k} times as many {X} as {N}, who has {a}.", 0),
    T(
        "{N} collects {a} {X} and {O} collects {k} times as many.",
        I,
    ),
    T("{N} has {a} {X} and {O} has twice as many.", TWO),
    T("{N} saved {a} {X}, and {O} saved {k} times as much.", M),
    T("{O} has {k} times as many {X} as {N}, and {N} has {a}.", 0),
    T("While {N} has {a} {X}, {O} has {k} times as many.", 0),
    T("{N} owns {a} {X}, and {O} owns {k} times as many.", H),
];

const TIMES_ASK: &[T] = &[
    T(
        "How many {X} does {O} have if {N} has {a} and {O} has {k} times as many?",
        0,
    ),
    T(
        "If {N} has {a} {X} and {O} has {k} times as many, how many does {O} have?",
        0,
    ),
    T(
        "{N} has {a} {X}. How many does {O} have if {O} has twice as many?",
        TWO,
    ),
    T(
        "If {O} has {k} times as many {X} as {N}, and {N} has {a}, how many does {O} have?",
        H,
    ),
];

const COMPARE_LAST: &[T] = &[
    T(
        "{O} has {n} {X}. How many more {X} does {A} have than {B}?",
        0,
    ),
    T(
        "{O} has {n} {X}. How many fewer {X} does {B} have than {A}?",
        0,
    ),
    T(
        "{O} has {n} {X}. What is the difference between their numbers of {X}?",
        0,
    ),
    T("{O} owns {n} {X}. How many more does {A} have?", 0),
    T(
        "How many more {X} does {A} have than {B} if {O} has {n}?",
        0,
    ),
    T(
        "If {O} has {n} {X}, how many more {X} does {A} have than {B}?",
        0,
    ),
    T("{O} has {n} {X}. How many more {X} does {A} have?", 0),
    T(
        "{O} collected {n} {X}. How many more {X} did {A} collect than {B}?",
        I,
    ),
    T("{O} has only {n} {X}. How many more does {A} have?", OSMALL),
    T(
        "{O} has {n} {X}. How many {X} fewer does {B} have than {A}?",
        0,
    ),
    T(
        "{O} has {n} {X}. What is the difference between {A}'s and {B}'s {X}?",
        0,
    ),
    T(
        "{O} has {n} {X}. How many {X} does {A} have more than {B}?",
        0,
    ),
    T(
        "{O} has {n} {X}. Find how many more {X} {A} has than {B}.",
        0,
    ),
    T(
        "{O} has {n} {X}. How many more {X} would {B} need to have as many as {A}?",
        0,
    ),
    T(
        "How many fewer {X} does {B} have than {A} if {O} has {n}?",
        0,
    ),
    T(
        "{O} has {n} {X} too. How many more does {A} have than {B}?",
        0,
    ),
    T(
        "{O} has {n} {X}. How much more money does {A} have than {B}?",
        M,
    ),
    T(
        "{O} has {n} {X}, more than {N}. What is the difference?",
        OBIG,
    ),
    T(
        "{O} has {n} {X}. How many more {X} does {A} have compared to {B}?",
        0,
    ),
    T(
        "{O} has {n} {X}. How many {X} more than {B} does {A} have?",
        H,
    ),
    T(
        "If {O} has {n} {X}, how many fewer {X} does {B} have than {A}?",
        H,
    ),
    T(
        "{O} only has {n} {X}. How many more {X} does {A} have?",
        H | OSMALL,
    ),
    T(
        "{O} has {n} {X}. How many more {X} does {A} own than {B}?",
        H,
    ),
];

const COMPARE_FIRST: &[T] = &[
    T(
        "{N} has {a} {X} and {O} has {n}. How many more {X} does {A} have than {B}?",
        0,
    ),
    T(
        "{N} picked {a} {X} and {O} picked {n}. How many more {X} did {A} pick than {B}?",
        PK,
    ),
    T(
        "If {N} has {a} {X} and {O} has {n}, how many more does {A} have?",
        0,
    ),
    T(
        "How many more {X} does {A} have than {B} if {N} has {a} and {O} has {n}?",
        0,
    ),
    T(
        "{N} scores {a} points and {O} scores {n} points. How many more points does {A} score?",
        0,
    ),
    T(
        "{N} reads {a} pages and {O} reads {n}. How many more pages does {A} read than {B}?",
        0,
    ),
    T(
        "{N} runs {a} laps and {O} runs {n}. How many fewer laps does {B} run than {A}?",
        0,
    ),
    T(
        "There are {a} {X} in {N}'s box and {n} in {O}'s box. How many more are in {A}'s box?",
        I,
    ),
    T(
        "{N} saved {a} {X} and {O} saved {n} {X}. How many more {X} did {A} save?",
        M,
    ),
    T(
        "{N} has {a} {X}, while {O} has {n}. What is the difference?",
        0,
    ),
    T(
        "{N} sells {a} {X} and {O} sells {n}. How many more {X} does {A} sell than {B}?",
        I,
    ),
    T(
        "{N} collects {a} {X}, and {O} collects {n}. How many more does {A} collect?",
        I,
    ),
    T(
        "{N} has {a} {X}, and {O} has {n}. How many fewer {X} does {B} have than {A}?",
        H,
    ),
    T(
        "{N} picks {a} {X} and {O} picks {n}. What is the difference?",
        H | PK,
    ),
    T(
        "If {N} has {a} {X} and {O} has {n}, how many fewer does {B} have?",
        H,
    ),
];

const PRICE_SELL: &[T] = &[
    T("{P} sells them for {r} {u} each.", 0),
    T("{P} sells each {x} for {r} {u}.", 0),
    T("{P} sells all of them at {r} {u} each.", 0),
    T("{P} sells the {X} for {r} {u} apiece.", 0),
    T("{P} sells them all and gets {r} {u} per {x}.", 0),
    T("{P} sells every {x} for {r} {u}.", 0),
    T("{P} sells them at the market for {r} {u} each.", 0),
    T("Then {p} sells all the {X} at {r} {u} per {x}.", 0),
    T("{P} sells each one for {r} {u}.", 0),
    T("{P} sells them for {r} {u} apiece.", 0),
    T("{P} gets {r} {u} for each {x} {p} sells.", 0),
    T("{P} sells every one of them at {r} {u}.", 0),
    T("{P} charges {r} {u} per {x} and sells them all.", 0),
    T("{P} sells all the {X} for {r} {u} each.", 0),
    T("At the fair, {p} sells each {x} for {r} {u}.", 0),
    T("{P} sells the {X} at {r} {u} per {x}.", 0),
    T("{P} sells them at {r} {u} apiece.", H),
];

const PRICE_FIRST: &[T] = &[
    T("{X} cost {r} {u} each. {N} buys {q}.", 0),
    T("{N} buys {q} {X} at {r} {u} each.", 0),
    T("{N} buys {q} {X} for {r} {u} each.", 0),
    T("Each {x} costs {r} {u}. {N} buys {q} of them.", 0),
    T("{N} buys {q} {X}. Each one costs {r} {u}.", 0),
    T("{N} orders {q} {X} that cost {r} {u} each.", 0),
    T("{N} pays {r} {u} per {x} for {q} {X}.", 0),
    T("One {x} costs {r} {u}, and {N} wants {q}.", 0),
    T("{N} buys {q} {X} priced at {r} {u} apiece.", 0),
    T("The shop sells {X} for {r} {u} each. {N} buys {q}.", 0),
    T("{N} gets {q} {X}. They cost {r} {u} each.", 0),
    T("{N} needs {q} {X}, and one {x} costs {r} {u}.", 0),
    T("Each {x} is {r} {u}. {N} buys {q}.", H),
    T("{N} buys {q} {X}, and each {x} costs {r} {u}.", H),
];

const PRICE_ASK: &[T] = &[
    T("How much does {N} pay for {q} {X} at {r} {u} each?", 0),
    T("If one {x} costs {r} {u}, how much do {q} {X} cost?", 0),
    T("{X} cost {r} {u} each. How much does {N} pay for {q}?", 0),
    T(
        "How many {u} does {N} spend on {q} {X} if each costs {r} {u}?",
        0,
    ),
    T("How much do {q} {X} cost at {r} {u} each?", H),
];

const PRICE_SPEND: &[T] = &[
    T("{P} buys {q} {Y} for {r} {u} each.", 0),
    T("{P} buys {q} {Y} that cost {r} {u} each.", 0),
    T("{P} pays for {q} {Y} at {r} {u} each.", 0),
    T("Then {p} buys {q} {Y}, which cost {r} {u} each.", 0),
    T("{Y} cost {r} {u} each, and {p} buys {q}.", 0),
    T("{P} buys {q} {Y} at {r} {u} apiece.", 0),
    T("{P} spends some of it on {q} {Y} at {r} {u} each.", 0),
    T("{P} gets {q} {Y} at {r} {u} each.", 0),
    T("{P} picks out {q} {Y} at {r} {u} each.", 0),
    T("{P} orders {q} {Y} for {r} {u} each.", 0),
    T("{P} spends money on {q} {Y} that are {r} {u} each.", 0),
    T("{P} buys {q} {Y} for {r} {u} apiece.", H),
];

const PRICE_CHANGE: &[T] = &[
    T("{P} pays with a {b}-{v} {w}.", 0),
    T("{P} gives the cashier a {b}-{v} {w}.", 0),
    T("{P} pays with {b} {u}.", 0),
    T("{P} hands over a {b}-{v} {w}.", 0),
    T("{P} gives the seller {b} {u}.", 0),
    T("{P} has a {b}-{v} {w} to pay with.", 0),
    T("{P} pays using a {b}-{v} {w}.", 0),
    T("{P} gives the clerk {b} {u}.", 0),
    T("{P} hands the cashier {b} {u}.", 0),
    T("{P} pays with a {w} worth {b} {u}.", 0),
    T("{P} pays the cashier with a {b}-{v} {w}.", H),
    T("{P} hands the seller {b} {u}.", H),
];

const SHARE_EACH: &[T] = &[
    T(
        "{P} shares them equally among {k} {F}. How many {X} does each {f} get?",
        0,
    ),
    T(
        "{P} divides them equally between {k} {F}. How many does each {f} get?",
        0,
    ),
    T(
        "{P} splits the {X} evenly among {k} {F}. How many {X} does each get?",
        0,
    ),
    T(
        "{P} gives all of them to {k} {F}, the same number to each. How many does each {f} get?",
        0,
    ),
    T(
        "How many {X} does each {f} get if {p} shares them equally among {k} {F}?",
        0,
    ),
    T(
        "{P} puts them into {k} {C} with the same number in each. How many {X} are in each {c}?",
        I,
    ),
    T(
        "{P} packs the {X} equally into {k} {C}. How many {X} go in each {c}?",
        I,
    ),
    T(
        "{P} shares them equally among {k} {F}. How many does each one get?",
        0,
    ),
    T(
        "The {X} are shared equally by {k} {F}. How many {X} does each {f} get?",
        0,
    ),
    T(
        "{P} hands them out equally to {k} {F}. How many {X} does each {f} receive?",
        0,
    ),
    T(
        "{P} splits them into {k} equal groups. How many {X} are in each group?",
        I,
    ),
    T(
        "{P} divides the {X} equally among {s} {k} {F}. How many does each {f} get?",
        0,
    ),
    T(
        "If {N} shares the {X} equally among {k} {F}, how many does each {f} get?",
        0,
    ),
    T(
        "{P} shares the money equally among {k} {F}. How much does each {f} get?",
        M,
    ),
    T(
        "{P} shares them equally among {k} {F}. How many {X} does each {f} receive?",
        H,
    ),
    T(
        "How many {X} does each {f} get if {p} divides them equally among {k} {F}?",
        H,
    ),
    T(
        "{P} splits the {X} equally among {k} {F}. How many does each {f} get?",
        H,
    ),
];

const SHARE_BAGS: &[T] = &[
    T(
        "{P} puts them into {C} of {k}. How many {C} does {p} fill?",
        0,
    ),
    T(
        "{P} packs {k} {X} in each {c}. How many {C} does {p} need?",
        0,
    ),
    T(
        "{P} puts {k} {X} into each {c}. How many {C} can {p} fill?",
        0,
    ),
    T("How many {C} of {k} can {p} make with the {X}?", 0),
    T(
        "{P} packs the {X} in {C} of {k}. How many {C} does {p} use?",
        0,
    ),
    T(
        "{P} wants to put {k} {X} in every {c}. How many {C} are needed?",
        0,
    ),
    T(
        "{P} puts the {X} into {C} of {k}. How many {C} does {p} need?",
        H,
    ),
];

const SHARE_EACH_FIRST: &[T] = &[
    T("{N} shares {a} {X} equally among {k} {F}. How many does each {f} get?", 0),
    T("{N} has {a} {X} to share equally among {k} {F}. How many {X} does each {f} get?", 0),
    T("If {N} divides {a} {X} equally among {k} {F}, how many does each get?", 0),
    T("How many {X} does each {f} get when {N} shares {a} {X} equally among {k} {F}?", 0),
    T("{a} {X} are shared equally by {k} {F}. How many {X} does each {f} get?", 0),
    T("{N} splits {a} {X} into {k} equal piles. How many {X} are in each pile?", I),
    T("{N} has {a} {X} and {k} {F}. {P} gives each {f} the same number. How many does each {f} get?", 0),
    T("{N} divides {a} {X} equally among {k} {F}. How many does each {f} get?", H),
];

const SHARE_BAGS_FIRST: &[T] = &[
    T(
        "{N} has {a} {X} and puts them into {C} of {k}. How many {C} does {p} fill?",
        I,
    ),
    T(
        "{N} packs {a} {X} into {C} with {k} in each. How many {C} does {p} need?",
        I,
    ),
    T("How many {C} of {k} can {N} fill with {a} {X}?", I),
    T(
        "{a} {X} are packed {k} to a {c}. How many {C} are there?",
        I,
    ),
    T(
        "{N} needs to pack {a} {X}, {k} in each {c}. How many {C} does {p} need?",
        I,
    ),
    T(
        "{N} packs {a} {X} in {C} of {k}. How many {C} does {p} use?",
        H | I,
    ),
];
