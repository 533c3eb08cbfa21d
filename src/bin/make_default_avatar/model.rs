//! The default avatar, generated from code: no redistributable VRM exists in the package
//! registries, so the project draws its own. A small stylised girl ("Lumi") made of smooth
//! shells: lavender twin tails, blue eyes, a white blouse with a navy collar and pleated skirt.
//!
//! Everything is deterministic (fixed segment counts, f32 arithmetic, ordered JSON), so
//! regenerating gives the same bytes; a test checks that against the committed files.
//!
//! Layout: 21 humanoid bones in T-pose (no rest rotations), three skinned meshes: `Body` (rigid
//! per part), `Face` (flat features laid on the head, carrying every morph target) and `Hair`.
//! VRM 1.0 faces +Z; the VRM 0.x twin is the same model turned to face -Z, as 0.x requires.

use serde_json::{json, Value};

type V3 = [f32; 3];

// ------------------------------------------------------------------------------------ bones

const HEAD_C: V3 = [0.0, 1.36, 0.0];
const HEAD_R: V3 = [0.105, 0.118, 0.102];

/// (VRM bone name, parent index, world position).
const BONES: [(&str, Option<usize>, V3); 21] = [
    ("hips", None, [0.0, 0.80, 0.0]),
    ("spine", Some(0), [0.0, 0.90, 0.0]),
    ("chest", Some(1), [0.0, 1.03, 0.0]),
    ("neck", Some(2), [0.0, 1.20, 0.0]),
    ("head", Some(3), [0.0, 1.26, 0.0]),
    ("leftEye", Some(4), [0.040, 1.348, 0.045]),
    ("rightEye", Some(4), [-0.040, 1.348, 0.045]),
    ("leftShoulder", Some(2), [0.03, 1.16, 0.0]),
    ("leftUpperArm", Some(7), [0.095, 1.16, 0.0]),
    ("leftLowerArm", Some(8), [0.30, 1.16, 0.0]),
    ("leftHand", Some(9), [0.50, 1.16, 0.0]),
    ("rightShoulder", Some(2), [-0.03, 1.16, 0.0]),
    ("rightUpperArm", Some(11), [-0.095, 1.16, 0.0]),
    ("rightLowerArm", Some(12), [-0.30, 1.16, 0.0]),
    ("rightHand", Some(13), [-0.50, 1.16, 0.0]),
    ("leftUpperLeg", Some(0), [0.07, 0.78, 0.0]),
    ("leftLowerLeg", Some(15), [0.07, 0.45, 0.0]),
    ("leftFoot", Some(16), [0.07, 0.08, 0.0]),
    ("rightUpperLeg", Some(0), [-0.07, 0.78, 0.0]),
    ("rightLowerLeg", Some(18), [-0.07, 0.45, 0.0]),
    ("rightFoot", Some(19), [-0.07, 0.08, 0.0]),
];
const HIPS: u16 = 0;
const SPINE: u16 = 1;
const CHEST: u16 = 2;
const NECK: u16 = 3;
const HEAD: u16 = 4;
const L_EYE: u16 = 5;
const R_EYE: u16 = 6;

// ------------------------------------------------------------------------------------ materials

/// (name, sRGB colour, roughness, emissive strength, double-sided)
const MATERIALS: [(&str, u32, f32, f32, bool); 15] = [
    ("Skin", 0xffe2d2, 0.75, 0.0, false),
    ("Hair", 0xb58be0, 0.45, 0.0, true),
    ("EyeWhite", 0xffffff, 0.6, 0.05, false),
    ("Iris", 0x2f9fd6, 0.35, 0.15, false),
    ("Pupil", 0x1a2340, 0.4, 0.0, false),
    ("Highlight", 0xffffff, 0.3, 1.0, false),
    ("Lash", 0x3b2440, 0.6, 0.0, false),
    ("Mouth", 0xa3384a, 0.6, 0.0, false),
    ("Blush", 0xffa4b0, 0.8, 0.0, false),
    ("Blouse", 0xf4f5fa, 0.8, 0.0, false),
    ("Navy", 0x283260, 0.7, 0.0, true),
    ("Ribbon", 0xe0414f, 0.5, 0.0, false),
    ("Stocking", 0x23232f, 0.7, 0.0, false),
    ("Shoe", 0x5b3a2e, 0.45, 0.0, false),
    ("Brow", 0x6a4a86, 0.6, 0.0, false),
];
const SKIN: usize = 0;
const HAIR: usize = 1;
const EYE_WHITE: usize = 2;
const IRIS: usize = 3;
const PUPIL: usize = 4;
const HIGHLIGHT: usize = 5;
const LASH: usize = 6;
const MOUTH: usize = 7;
const BLUSH: usize = 8;
const BLOUSE: usize = 9;
const NAVY: usize = 10;
const RIBBON: usize = 11;
const STOCKING: usize = 12;
const SHOE: usize = 13;
const BROW: usize = 14;

// ------------------------------------------------------------------------------------ morphs

const TARGETS: [&str; 15] = [
    "blinkL",
    "blinkR",
    "happyEyes",
    "relaxedEyes",
    "wideEyes",
    "mouthA",
    "mouthI",
    "mouthU",
    "mouthE",
    "mouthO",
    "smile",
    "frown",
    "browAngry",
    "browSad",
    "browUp",
];
const BLINK_L: usize = 0;
const BLINK_R: usize = 1;
const HAPPY_EYES: usize = 2;
const RELAXED_EYES: usize = 3;
const WIDE_EYES: usize = 4;
const MOUTH_A: usize = 5;
const MOUTH_I: usize = 6;
const MOUTH_U: usize = 7;
const MOUTH_E: usize = 8;
const MOUTH_O: usize = 9;
const SMILE: usize = 10;
const FROWN: usize = 11;
const BROW_ANGRY: usize = 12;
const BROW_SAD: usize = 13;
const BROW_UP: usize = 14;

/// The VRM 1.0 expression presets and the morph targets each one moves (target, weight).
const EXPRESSIONS: [(&str, &[(usize, f32)]); 14] = [
    ("aa", &[(MOUTH_A, 1.0)]),
    ("ih", &[(MOUTH_I, 1.0)]),
    ("ou", &[(MOUTH_U, 1.0)]),
    ("ee", &[(MOUTH_E, 1.0)]),
    ("oh", &[(MOUTH_O, 1.0)]),
    ("blink", &[(BLINK_L, 1.0), (BLINK_R, 1.0)]),
    ("blinkLeft", &[(BLINK_L, 1.0)]),
    ("blinkRight", &[(BLINK_R, 1.0)]),
    ("happy", &[(HAPPY_EYES, 1.0), (SMILE, 1.0), (MOUTH_A, 0.3)]),
    (
        "angry",
        &[(BROW_ANGRY, 1.0), (FROWN, 0.7), (RELAXED_EYES, 0.3)],
    ),
    ("sad", &[(BROW_SAD, 1.0), (FROWN, 1.0), (RELAXED_EYES, 0.4)]),
    ("relaxed", &[(RELAXED_EYES, 1.0), (SMILE, 0.7)]),
    (
        "surprised",
        &[(WIDE_EYES, 1.0), (BROW_UP, 1.0), (MOUTH_O, 0.7)],
    ),
    ("neutral", &[]),
];

/// VRM 0.x preset names for the same expressions.
fn preset_v0(name: &str) -> &'static str {
    match name {
        "aa" => "a",
        "ih" => "i",
        "ou" => "u",
        "ee" => "e",
        "oh" => "o",
        "blink" => "blink",
        "blinkLeft" => "blink_l",
        "blinkRight" => "blink_r",
        "happy" => "joy",
        "angry" => "angry",
        "sad" => "sorrow",
        "relaxed" => "fun",
        "neutral" => "neutral",
        _ => "unknown",
    }
}

// ------------------------------------------------------------------------------------ geometry

/// A primitive being built: one material, rigidly or two-bone skinned vertices.
#[derive(Default)]
struct Prim {
    material: usize,
    pos: Vec<V3>,
    nrm: Vec<V3>,
    joints: Vec<[u16; 4]>,
    weights: Vec<[f32; 4]>,
    idx: Vec<u32>,
    targets: Vec<Vec<V3>>,
}

struct Mesh {
    name: &'static str,
    prims: Vec<Prim>,
    morphs: bool,
}

impl Mesh {
    fn new(name: &'static str, morphs: bool) -> Self {
        Self {
            name,
            prims: Vec::new(),
            morphs,
        }
    }

    fn prim(&mut self, material: usize) -> &mut Prim {
        let i = match self.prims.iter().position(|p| p.material == material) {
            Some(i) => i,
            None => {
                self.prims.push(Prim {
                    material,
                    targets: if self.morphs {
                        vec![Vec::new(); TARGETS.len()]
                    } else {
                        Vec::new()
                    },
                    ..Prim::default()
                });
                self.prims.len() - 1
            }
        };
        &mut self.prims[i]
    }
}

fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn scale(a: V3, s: f32) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
fn normalize(a: V3) -> V3 {
    let l = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
    if l > 1e-12 {
        scale(a, 1.0 / l)
    } else {
        [0.0, 1.0, 0.0]
    }
}
fn clamp01(x: f32) -> f32 {
    x.clamp(0.0, 1.0)
}

/// Local axes of a shell: x, y, z columns in world space.
type Basis = [V3; 3];
const IDENTITY: Basis = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// Turned about Z by `z` then about X by `x` (radians).
fn rot(z: f32, x: f32) -> Basis {
    let (sz, cz) = z.sin_cos();
    let (sx, cx) = x.sin_cos();
    let rz = |v: V3| [v[0] * cz - v[1] * sz, v[0] * sz + v[1] * cz, v[2]];
    let rx = |v: V3| [v[0], v[1] * cx - v[2] * sx, v[1] * sx + v[2] * cx];
    [
        rx(rz([1.0, 0.0, 0.0])),
        rx(rz([0.0, 1.0, 0.0])),
        rx(rz([0.0, 0.0, 1.0])),
    ]
}

/// Along +X (an arm lying in T-pose): local y becomes world x.
const ALONG_X: Basis = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];

fn apply(b: &Basis, v: V3) -> V3 {
    add(add(scale(b[0], v[0]), scale(b[1], v[1])), scale(b[2], v[2]))
}

/// Which bones move a vertex: one, or a blend of two.
type Skin<'a> = &'a dyn Fn(V3) -> ([u16; 2], f32);

fn rigid(j: u16) -> impl Fn(V3) -> ([u16; 2], f32) {
    move |_| ([j, j], 1.0)
}

/// Blends from `low` (below `y0`) to `high` (above `y1`).
fn blend_y(low: u16, high: u16, y0: f32, y1: f32) -> impl Fn(V3) -> ([u16; 2], f32) {
    move |p| ([high, low], clamp01((p[1] - y0) / (y1 - y0)))
}

/// Appends a closed (or trimmed) smooth shell: a unit sphere scaled by `radii`, bent by
/// `deform`, oriented by `basis`, placed at `center`. Triangles whose unit-sphere centroid fails
/// `keep` are left out. Normals are averaged from the faces, so any deformation shades smoothly.
#[allow(clippy::too_many_arguments)]
fn shell(
    prim: &mut Prim,
    center: V3,
    radii: V3,
    basis: &Basis,
    (n_lat, n_lon): (usize, usize),
    deform: &dyn Fn(V3, V3) -> V3,
    keep: &dyn Fn(V3) -> bool,
    skin: Skin,
) {
    let base = prim.pos.len() as u32;
    let mut unit = Vec::new();
    // Top pole, rings, bottom pole; longitudes share their seam.
    unit.push([0.0, 1.0, 0.0]);
    for i in 1..n_lat {
        let th = std::f32::consts::PI * i as f32 / n_lat as f32;
        for j in 0..n_lon {
            let ph = std::f32::consts::TAU * j as f32 / n_lon as f32;
            unit.push([th.sin() * ph.cos(), th.cos(), th.sin() * ph.sin()]);
        }
    }
    unit.push([0.0, -1.0, 0.0]);
    let ring = |i: usize, j: usize| -> u32 { (1 + (i - 1) * n_lon + j % n_lon) as u32 };
    let last = (unit.len() - 1) as u32;
    let mut tris: Vec<[u32; 3]> = Vec::new();
    for j in 0..n_lon {
        tris.push([0, ring(1, j + 1), ring(1, j)]);
        tris.push([last, ring(n_lat - 1, j), ring(n_lat - 1, j + 1)]);
    }
    for i in 1..n_lat - 1 {
        for j in 0..n_lon {
            let (a, b, c, d) = (
                ring(i, j),
                ring(i + 1, j),
                ring(i, j + 1),
                ring(i + 1, j + 1),
            );
            tris.push([a, c, b]);
            tris.push([c, d, b]);
        }
    }
    tris.retain(|t| {
        let c = scale(
            add(
                add(unit[t[0] as usize], unit[t[1] as usize]),
                unit[t[2] as usize],
            ),
            1.0 / 3.0,
        );
        keep(c)
    });
    let pos: Vec<V3> = unit
        .iter()
        .map(|u| {
            let local = [u[0] * radii[0], u[1] * radii[1], u[2] * radii[2]];
            add(center, apply(basis, deform(local, *u)))
        })
        .collect();
    let mut nrm = vec![[0.0f32; 3]; pos.len()];
    for t in &tris {
        let [a, b, c] = t.map(|i| pos[i as usize]);
        let n = cross(sub(b, a), sub(c, a));
        for &i in t {
            nrm[i as usize] = add(nrm[i as usize], n);
        }
    }
    for (p, n) in pos.iter().zip(nrm) {
        push_vertex(prim, *p, normalize(n), skin);
    }
    prim.idx
        .extend(tris.iter().flat_map(|t| t.map(|i| base + i)));
}

fn push_vertex(prim: &mut Prim, p: V3, n: V3, skin: Skin) {
    let ([a, b], w) = skin(p);
    prim.pos.push(p);
    prim.nrm.push(n);
    if w >= 1.0 || a == b {
        prim.joints.push([a, 0, 0, 0]);
        prim.weights.push([1.0, 0.0, 0.0, 0.0]);
    } else {
        prim.joints.push([a, b, 0, 0]);
        prim.weights.push([w, 1.0 - w, 0.0, 0.0]);
    }
    for t in &mut prim.targets {
        t.push([0.0; 3]);
    }
}

fn no_deform(l: V3, _: V3) -> V3 {
    l
}
fn keep_all(_: V3) -> bool {
    true
}

/// A capsule of radius `r` whose axis (local y) is `2 * half` long.
fn capsule_deform(half: f32) -> impl Fn(V3, V3) -> V3 {
    move |l, _| [l[0], l[1] + half * l[1].signum(), l[2]]
}

// ------------------------------------------------------------------------------------ the face

/// The head's surface: an ellipsoid narrowed towards the chin.
fn chin_narrowing(ny: f32) -> f32 {
    let t = (-ny).max(0.0);
    1.0 - 0.30 * t * t
}

fn head_deform(l: V3, u: V3) -> V3 {
    let f = chin_narrowing(u[1]);
    [l[0] * f, l[1], l[2] * (0.75 + 0.25 * f)]
}

/// The point of the head's surface in front of (x, y) (relative to the head's centre), pushed out
/// by `lift`, and the surface normal there.
fn on_face(x: f32, y: f32, lift: f32) -> (V3, V3) {
    let ny = (y / HEAD_R[1]).clamp(-0.999, 0.999);
    let f = chin_narrowing(ny);
    let nx = x / (HEAD_R[0] * f);
    let nz = (1.0 - nx * nx - ny * ny).max(0.0).sqrt();
    let z = HEAD_R[2] * (0.75 + 0.25 * f) * nz;
    let n = normalize([nx / HEAD_R[0], ny / HEAD_R[1], nz / HEAD_R[2]]);
    (add(HEAD_C, [x, y, z + lift]), n)
}

/// A flat feature drawn on the face: a grid of (u, v) parameters, a 2D shape for the base pose
/// and for each morph target (`None` = rest), laid onto the head `lift` metres out.
struct Feature<'a> {
    material: usize,
    joint: u16,
    lift: f32,
    grid: Grid,
    shape: &'a dyn Fn(Option<usize>, f32, f32) -> [f32; 2],
}

#[derive(Clone, Copy)]
enum Grid {
    /// A filled ellipse: u = radius (0..1), v = angle.
    Disk { rings: usize, segments: usize },
    /// A band: u = along (0..1), v = across (-1..1).
    Band { segments: usize },
}

fn feature(mesh: &mut Mesh, f: Feature) {
    let prim = mesh.prim(f.material);
    let base = prim.pos.len() as u32;
    let params: Vec<(f32, f32)> = match f.grid {
        Grid::Disk { rings, segments } => {
            let mut v = vec![(0.0, 0.0)];
            for r in 1..=rings {
                for s in 0..segments {
                    v.push((
                        r as f32 / rings as f32,
                        std::f32::consts::TAU * s as f32 / segments as f32,
                    ));
                }
            }
            v
        }
        Grid::Band { segments } => (0..=segments)
            .flat_map(|s| {
                [
                    (s as f32 / segments as f32, -1.0),
                    (s as f32 / segments as f32, 1.0),
                ]
            })
            .collect(),
    };
    for &(u, v) in &params {
        let [x, y] = (f.shape)(None, u, v);
        let (p, n) = on_face(x, y, f.lift);
        push_vertex(prim, p, n, &rigid(f.joint));
        let at = prim.pos.len() - 1;
        for (m, target) in prim.targets.iter_mut().enumerate() {
            let [mx, my] = (f.shape)(Some(m), u, v);
            let (q, _) = on_face(mx, my, f.lift);
            target[at] = sub(q, p);
        }
    }
    let first_index = prim.idx.len();
    match f.grid {
        Grid::Disk { rings, segments } => {
            let at = |r: usize, s: usize| -> u32 {
                if r == 0 {
                    base
                } else {
                    base + 1 + ((r - 1) * segments + s % segments) as u32
                }
            };
            for s in 0..segments {
                prim.idx.extend([at(0, 0), at(1, s), at(1, s + 1)]);
                for r in 1..rings {
                    let (a, b, c, d) = (at(r, s), at(r + 1, s), at(r, s + 1), at(r + 1, s + 1));
                    prim.idx.extend([a, b, c, c, b, d]);
                }
            }
        }
        Grid::Band { segments } => {
            for s in 0..segments as u32 {
                let (a, b, c, d) = (
                    base + 2 * s,
                    base + 2 * s + 1,
                    base + 2 * s + 2,
                    base + 2 * s + 3,
                );
                prim.idx.extend([a, c, b, b, c, d]);
            }
        }
    }
    // A grid may run clockwise on the face (mirrored features): turn such triangles outwards.
    for t in prim.idx[first_index..].chunks_exact_mut(3) {
        let [a, b, c] = [t[0], t[1], t[2]].map(|i| prim.pos[i as usize]);
        let n = cross(sub(b, a), sub(c, a));
        let outward = prim.nrm[t[0] as usize];
        if n[0] * outward[0] + n[1] * outward[1] + n[2] * outward[2] < 0.0 {
            t.swap(1, 2);
        }
    }
}

const EYE_Y: f32 = -0.012;
const EYE_X: f32 = 0.040;
const EYE_RX: f32 = 0.025;
const EYE_RY: f32 = 0.029;

/// Where an eye part's point goes under an eye morph, for the eye on `side` (+1 left, -1 right).
/// `(x, y)` is the rest point, `sin_arc` how high on the lid arc it sits (for the lash line).
fn eye_morph(m: usize, side: f32, x: f32, y: f32, lash: Option<f32>) -> [f32; 2] {
    let cx = side * EYE_X;
    let closed_y = EYE_Y - 0.30 * EYE_RY;
    let blink_this = (m == BLINK_L && side > 0.0) || (m == BLINK_R && side < 0.0);
    match (m, lash) {
        _ if blink_this => match lash {
            Some(s) => [
                x,
                closed_y - 0.18 * EYE_RY * s + (y - lash_rest_y(x, side)) * 0.8,
            ],
            None => [x, closed_y + (y - EYE_Y) * 0.04],
        },
        (HAPPY_EYES, Some(s)) => [
            cx + (x - cx) * 0.92,
            closed_y + 0.45 * EYE_RY * s + (y - lash_rest_y(x, side)) * 0.9,
        ],
        (HAPPY_EYES, None) => [
            cx + (x - cx) * 0.9,
            closed_y + 0.2 * EYE_RY + (y - EYE_Y) * 0.03,
        ],
        (RELAXED_EYES, Some(s)) => [
            x,
            EYE_Y + 0.05 * EYE_RY + 0.4 * EYE_RY * s + (y - lash_rest_y(x, side)),
        ],
        (RELAXED_EYES, None) => {
            let dx = ((x - cx) / EYE_RX).clamp(-1.0, 1.0);
            let lid = EYE_Y + 0.05 * EYE_RY + 0.4 * EYE_RY * (1.0 - dx * dx).sqrt();
            [x, y.min(lid)]
        }
        (WIDE_EYES, _) => [cx + (x - cx) * 1.05, EYE_Y + (y - EYE_Y) * 1.18],
        _ => [x, y],
    }
}

/// The lash line's rest height above the eye centre at `x`.
fn lash_rest_y(x: f32, side: f32) -> f32 {
    let dx = ((x - side * EYE_X) / (EYE_RX + 0.003)).clamp(-1.0, 1.0);
    EYE_Y + (EYE_RY + 0.002) * (1.0 - dx * dx).sqrt()
}

fn face(mesh: &mut Mesh) {
    for side in [1.0f32, -1.0] {
        let cx = side * EYE_X;
        let eye_bone = if side > 0.0 { L_EYE } else { R_EYE };
        // Eye white, iris, pupil and highlight: ellipses that squash with the lids.
        // (material, bone, depth offset, centre, radii)
        #[allow(clippy::type_complexity)]
        let parts: [(usize, u16, f32, [f32; 2], [f32; 2]); 4] = [
            (EYE_WHITE, HEAD, 0.0010, [cx, EYE_Y], [EYE_RX, EYE_RY]),
            (IRIS, eye_bone, 0.0018, [cx, EYE_Y - 0.002], [0.0165, 0.021]),
            (
                PUPIL,
                eye_bone,
                0.0026,
                [cx, EYE_Y - 0.003],
                [0.0075, 0.0105],
            ),
            (
                HIGHLIGHT,
                eye_bone,
                0.0034,
                [cx - 0.006, EYE_Y + 0.007],
                [0.0055, 0.0060],
            ),
        ];
        for (material, joint, lift, c, r) in parts {
            let shape = move |m: Option<usize>, u: f32, v: f32| {
                let x = c[0] + r[0] * u * v.cos();
                let y = c[1] + r[1] * u * v.sin();
                match m {
                    None => [x, y],
                    Some(WIDE_EYES) if material == PUPIL => {
                        [c[0] + (x - c[0]) * 0.8, c[1] + (y - c[1]) * 0.8]
                    }
                    Some(m) => eye_morph(m, side, x, y, None),
                }
            };
            feature(
                mesh,
                Feature {
                    material,
                    joint,
                    lift,
                    grid: Grid::Disk {
                        rings: 3,
                        segments: 20,
                    },
                    shape: &shape,
                },
            );
        }
        // The upper lash line: a band along the top of the eye, thicker at the outer corner.
        let lash = move |m: Option<usize>, u: f32, v: f32| {
            let a = std::f32::consts::PI * (0.06 + 0.88 * u);
            // u runs from the outer corner (side of the head) to the inner one.
            let dir = side;
            let s = a.sin();
            let x = cx + dir * (EYE_RX + 0.003) * a.cos();
            let thick = 0.0022 + 0.0022 * (1.0 - u);
            let y = lash_rest_y(x, side) + v * thick * 0.5 + 0.001 * (1.0 - u) * (1.0 - u);
            match m {
                None => [x, y],
                Some(m) => eye_morph(m, side, x, y, Some(s)),
            }
        };
        feature(
            mesh,
            Feature {
                material: LASH,
                joint: HEAD,
                lift: 0.0030,
                grid: Grid::Band { segments: 16 },
                shape: &lash,
            },
        );
        // Eyebrow: a thin arch; angry lowers the inner end, sad raises it.
        let brow = move |m: Option<usize>, u: f32, v: f32| {
            let t = 2.0 * u - 1.0; // -1 inner, +1 outer
            let x = side * (0.042 + 0.020 * t);
            let y = 0.030 + 0.004 * (1.0 - t * t) + v * (0.0018 + 0.0008 * (1.0 - u));
            let inner = (1.0 - t) * 0.5;
            let outer = (1.0 + t) * 0.5;
            let dy = match m {
                Some(BROW_ANGRY) => -0.010 * inner + 0.003 * outer,
                Some(BROW_SAD) => 0.008 * inner - 0.003 * outer,
                Some(BROW_UP) => 0.008,
                _ => 0.0,
            };
            [x, y + dy]
        };
        feature(
            mesh,
            Feature {
                material: BROW,
                joint: HEAD,
                lift: 0.0012,
                grid: Grid::Band { segments: 10 },
                shape: &brow,
            },
        );
        // Blush on the cheek.
        let blush = move |_: Option<usize>, u: f32, v: f32| {
            [
                side * 0.060 + 0.015 * u * v.cos(),
                -0.040 + 0.0065 * u * v.sin(),
            ]
        };
        feature(
            mesh,
            Feature {
                material: BLUSH,
                joint: HEAD,
                lift: 0.0006,
                grid: Grid::Disk {
                    rings: 2,
                    segments: 16,
                },
                shape: &blush,
            },
        );
    }
    // The mouth: an ellipse whose width, height and corner curve follow the visemes.
    let mouth = |m: Option<usize>, u: f32, v: f32| {
        let (mut w, mut h, mut curve) = (0.0105f32, 0.0022f32, 0.0025f32);
        match m {
            Some(MOUTH_A) => (w, h) = (0.017, 0.019),
            Some(MOUTH_I) => (w, h) = (0.022, 0.0055),
            Some(MOUTH_U) => (w, h) = (0.0075, 0.0095),
            Some(MOUTH_E) => (w, h) = (0.019, 0.010),
            Some(MOUTH_O) => (w, h) = (0.012, 0.016),
            Some(SMILE) => (w, curve) = (w + 0.004, curve + 0.006),
            Some(FROWN) => (w, curve) = (w - 0.001, curve - 0.008),
            _ => {}
        }
        let x = w * u * v.cos();
        let nx = u * v.cos();
        [x, -0.070 + h * u * v.sin() + curve * nx * nx]
    };
    feature(
        mesh,
        Feature {
            material: MOUTH,
            joint: HEAD,
            lift: 0.0010,
            grid: Grid::Disk {
                rings: 3,
                segments: 24,
            },
            shape: &mouth,
        },
    );
    // A hint of a nose.
    let nose =
        |_: Option<usize>, u: f32, v: f32| [0.0022 * u * v.cos(), -0.043 + 0.0016 * u * v.sin()];
    feature(
        mesh,
        Feature {
            material: BLUSH,
            joint: HEAD,
            lift: 0.0008,
            grid: Grid::Disk {
                rings: 1,
                segments: 10,
            },
            shape: &nose,
        },
    );
}

// ------------------------------------------------------------------------------------ body and hair

fn body(mesh: &mut Mesh) {
    shell(
        mesh.prim(SKIN),
        HEAD_C,
        HEAD_R,
        &IDENTITY,
        (28, 36),
        &head_deform,
        &keep_all,
        &rigid(HEAD),
    );
    // Neck
    shell(
        mesh.prim(SKIN),
        [0.0, 1.215, -0.005],
        [0.026, 0.026, 0.026],
        &IDENTITY,
        (10, 14),
        &capsule_deform(0.035),
        &keep_all,
        &blend_y(NECK, HEAD, 1.20, 1.26),
    );
    // Blouse: narrower at the waist, fuller at the chest.
    let torso = |l: V3, u: V3| {
        let waist = 1.0 - 0.22 * (-u[1]).max(0.0);
        let bust = 1.0 + 0.10 * (1.0 - ((u[1] - 0.25) * 2.5).powi(2)).max(0.0) * u[2].max(0.0);
        [l[0] * waist, l[1], l[2] * waist * bust]
    };
    shell(
        mesh.prim(BLOUSE),
        [0.0, 1.045, 0.0],
        [0.098, 0.150, 0.072],
        &IDENTITY,
        (18, 24),
        &torso,
        &keep_all,
        &blend_y(SPINE, CHEST, 0.96, 1.08),
    );
    // Sailor collar over the shoulders and a ribbon at the front.
    shell(
        mesh.prim(NAVY),
        [0.0, 1.182, -0.006],
        [0.118, 0.034, 0.084],
        &IDENTITY,
        (10, 24),
        &no_deform,
        &keep_all,
        &rigid(CHEST),
    );
    for s in [1.0f32, -1.0] {
        shell(
            mesh.prim(RIBBON),
            [s * 0.021, 1.128, 0.074],
            [0.021, 0.013, 0.008],
            &rot(s * 0.25, 0.0),
            (8, 12),
            &no_deform,
            &keep_all,
            &rigid(CHEST),
        );
        shell(
            mesh.prim(RIBBON),
            [s * 0.011, 1.098, 0.074],
            [0.007, 0.026, 0.005],
            &rot(s * 0.35, 0.0),
            (8, 10),
            &no_deform,
            &keep_all,
            &rigid(CHEST),
        );
    }
    shell(
        mesh.prim(RIBBON),
        [0.0, 1.128, 0.080],
        [0.009, 0.010, 0.007],
        &IDENTITY,
        (8, 10),
        &no_deform,
        &keep_all,
        &rigid(CHEST),
    );
    // Pleated skirt: a flared tube whose radius ripples around the hem. The shell's poles are
    // dropped, its rings become the tube.
    let skirt = |_: V3, u: V3| {
        let t = clamp01((1.0 - u[1]) * 0.5); // 0 at the waist, 1 at the hem
        let ang = u[2].atan2(u[0]);
        let pleat = 1.0 + 0.06 * t * (16.0 * ang).cos();
        let rx = (0.085 + 0.11 * t) * pleat;
        let rz = (0.068 + 0.09 * t) * pleat;
        [rx * ang.cos(), 0.955 - 0.30 * t, rz * ang.sin()]
    };
    shell(
        mesh.prim(NAVY),
        [0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0],
        &IDENTITY,
        (14, 64),
        &skirt,
        &|u: V3| u[1].abs() < 0.97,
        &rigid(HIPS),
    );
    for s in [1.0f32, -1.0] {
        let side = |i: usize| -> u16 {
            // left bones start at 7 (shoulder) and 15 (upper leg), right ones at 11 and 18.
            if s > 0.0 {
                i as u16
            } else {
                match i {
                    7..=10 => i as u16 + 4,
                    15..=17 => i as u16 + 3,
                    _ => i as u16,
                }
            }
        };
        // Local y along the arm, towards the hand (a rotation, so the winding stays outward).
        let arm: Basis = if s > 0.0 {
            ALONG_X
        } else {
            [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
        };
        // Sleeve, forearm, hand.
        shell(
            mesh.prim(BLOUSE),
            [s * 0.195, 1.16, 0.0],
            [0.036, 0.036, 0.036],
            &arm,
            (10, 16),
            &capsule_deform(0.085),
            &keep_all,
            &rigid(side(8)),
        );
        shell(
            mesh.prim(NAVY),
            [s * 0.292, 1.16, 0.0],
            [0.038, 0.012, 0.038],
            &arm,
            (6, 16),
            &no_deform,
            &keep_all,
            &rigid(side(8)),
        );
        shell(
            mesh.prim(SKIN),
            [s * 0.40, 1.16, 0.0],
            [0.026, 0.026, 0.026],
            &arm,
            (10, 14),
            &capsule_deform(0.085),
            &keep_all,
            &rigid(side(9)),
        );
        shell(
            mesh.prim(SKIN),
            [s * 0.545, 1.16, 0.004],
            [0.020, 0.048, 0.032],
            &arm,
            (10, 14),
            &no_deform,
            &keep_all,
            &rigid(side(10)),
        );
        // Thigh, stocking, shoe.
        shell(
            mesh.prim(SKIN),
            [s * 0.07, 0.66, 0.0],
            [0.052, 0.052, 0.052],
            &IDENTITY,
            (10, 16),
            &capsule_deform(0.12),
            &keep_all,
            &rigid(side(15)),
        );
        shell(
            mesh.prim(STOCKING),
            [s * 0.07, 0.31, 0.0],
            [0.044, 0.044, 0.044],
            &IDENTITY,
            (10, 16),
            &capsule_deform(0.22),
            &keep_all,
            &blend_y(side(16), side(15), 0.43, 0.47),
        );
        shell(
            mesh.prim(SHOE),
            [s * 0.07, 0.045, 0.028],
            [0.046, 0.042, 0.088],
            &IDENTITY,
            (10, 16),
            &no_deform,
            &|u: V3| u[1] > -0.6,
            &rigid(side(17)),
        );
    }
}

fn hair(mesh: &mut Mesh) {
    let prim = mesh.prim(HAIR);
    let on_head = blend_y(CHEST, HEAD, 1.12, 1.24);
    // The cap, open over the face.
    shell(
        prim,
        add(HEAD_C, [0.0, 0.014, -0.008]),
        [0.117, 0.128, 0.114],
        &IDENTITY,
        (28, 36),
        &no_deform,
        &|u: V3| !(u[2] > 0.25 && u[1] < 0.40) && u[1] > -0.80,
        &on_head,
    );
    // Fringe: tapered locks fanned over the forehead.
    for k in 0..7 {
        let x = -0.075 + 0.025 * k as f32;
        let taper = |l: V3, u: V3| {
            let t = clamp01(-u[1]);
            [l[0] * (1.0 - 0.75 * t), l[1], l[2] * (1.0 - 0.4 * t)]
        };
        let (p, _) = on_face(x, 0.080, 0.006);
        shell(
            prim,
            p,
            [0.020, 0.045, 0.011],
            &rot(x * 2.2, -0.35),
            (10, 12),
            &taper,
            &keep_all,
            &on_head,
        );
    }
    // Side locks framing the face.
    for s in [1.0f32, -1.0] {
        let taper = |l: V3, u: V3| {
            let t = clamp01(-u[1]);
            [l[0] * (1.0 - 0.6 * t), l[1], l[2] * (1.0 - 0.5 * t)]
        };
        shell(
            prim,
            add(HEAD_C, [s * 0.097, -0.040, 0.040]),
            [0.016, 0.085, 0.022],
            &rot(s * 0.10, 0.0),
            (12, 12),
            &taper,
            &keep_all,
            &on_head,
        );
        // Twin tails with their ties.
        shell(
            prim,
            add(HEAD_C, [s * 0.135, -0.130, -0.050]),
            [0.042, 0.200, 0.046],
            &rot(s * 0.14, 0.10),
            (16, 16),
            &taper,
            &keep_all,
            &blend_y(CHEST, HEAD, 1.05, 1.30),
        );
    }
    // Back hair down to the shoulders.
    shell(
        prim,
        add(HEAD_C, [0.0, -0.085, -0.050]),
        [0.112, 0.130, 0.065],
        &IDENTITY,
        (16, 24),
        &|l: V3, u: V3| [l[0] * (1.0 + 0.1 * clamp01(-u[1])), l[1], l[2]],
        &|u: V3| u[2] < 0.5,
        &on_head,
    );
    let ties = mesh.prim(RIBBON);
    for s in [1.0f32, -1.0] {
        shell(
            ties,
            add(HEAD_C, [s * 0.108, 0.040, -0.050]),
            [0.018, 0.022, 0.018],
            &IDENTITY,
            (8, 12),
            &no_deform,
            &keep_all,
            &rigid(HEAD),
        );
    }
}

// ------------------------------------------------------------------------------------ writing

/// Builds a binary glTF: the bytes, the accessors, the JSON document.
struct Writer {
    bin: Vec<u8>,
    views: Vec<Value>,
    accessors: Vec<Value>,
}

impl Writer {
    fn view(&mut self, bytes: &[u8], target: Option<u32>) -> usize {
        while !self.bin.len().is_multiple_of(4) {
            self.bin.push(0);
        }
        let mut v = json!({"buffer": 0, "byteOffset": self.bin.len(), "byteLength": bytes.len()});
        if let Some(t) = target {
            v["target"] = json!(t);
        }
        self.bin.extend_from_slice(bytes);
        self.views.push(v);
        self.views.len() - 1
    }

    fn vec3(&mut self, data: &[V3], bounds: bool) -> usize {
        let bytes: Vec<u8> = data
            .iter()
            .flatten()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let view = self.view(&bytes, Some(34962));
        let mut a =
            json!({"bufferView": view, "componentType": 5126, "count": data.len(), "type": "VEC3"});
        if bounds {
            let mut min = [f32::MAX; 3];
            let mut max = [f32::MIN; 3];
            for p in data {
                for i in 0..3 {
                    min[i] = min[i].min(p[i]);
                    max[i] = max[i].max(p[i]);
                }
            }
            a["min"] = json!(min);
            a["max"] = json!(max);
        }
        self.accessors.push(a);
        self.accessors.len() - 1
    }

    fn push(&mut self, view: usize, component: u32, count: usize, kind: &str) -> usize {
        self.accessors.push(
            json!({"bufferView": view, "componentType": component, "count": count, "type": kind}),
        );
        self.accessors.len() - 1
    }
}

fn srgb_to_linear(c: u32, shift: u32) -> f32 {
    let v = ((c >> shift) & 0xff) as f32 / 255.0;
    let lin = if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    };
    (lin * 10_000.0).round() / 10_000.0
}

#[derive(Clone, Copy, PartialEq)]
enum Flavour {
    Vrm1,
    Vrm0,
}

fn build(flavour: Flavour) -> Vec<u8> {
    let mut meshes = [
        Mesh::new("Body", false),
        Mesh::new("Face", true),
        Mesh::new("Hair", false),
    ];
    body(&mut meshes[0]);
    face(&mut meshes[1]);
    hair(&mut meshes[2]);

    // VRM 0.x models face -Z: turn everything half a turn about Y.
    let turn = |v: V3| -> V3 {
        if flavour == Flavour::Vrm0 {
            [-v[0], v[1], -v[2]]
        } else {
            v
        }
    };

    let mut w = Writer {
        bin: Vec::new(),
        views: Vec::new(),
        accessors: Vec::new(),
    };
    let mut mesh_json = Vec::new();
    for mesh in &meshes {
        let mut prims = Vec::new();
        for p in &mesh.prims {
            let pos: Vec<V3> = p.pos.iter().map(|v| turn(*v)).collect();
            let nrm: Vec<V3> = p.nrm.iter().map(|v| turn(*v)).collect();
            let a_pos = w.vec3(&pos, true);
            let a_nrm = w.vec3(&nrm, false);
            let joints: Vec<u8> = p
                .joints
                .iter()
                .flatten()
                .flat_map(|j| j.to_le_bytes())
                .collect();
            let v = w.view(&joints, Some(34962));
            let a_joints = w.push(v, 5123, p.joints.len(), "VEC4");
            let weights: Vec<u8> = p
                .weights
                .iter()
                .flatten()
                .flat_map(|f| f.to_le_bytes())
                .collect();
            let v = w.view(&weights, Some(34962));
            let a_weights = w.push(v, 5126, p.weights.len(), "VEC4");
            let idx: Vec<u8> = p.idx.iter().flat_map(|i| i.to_le_bytes()).collect();
            let v = w.view(&idx, Some(34963));
            let a_idx = w.push(v, 5125, p.idx.len(), "SCALAR");
            let mut prim = json!({
                "attributes": {"POSITION": a_pos, "NORMAL": a_nrm, "JOINTS_0": a_joints, "WEIGHTS_0": a_weights},
                "indices": a_idx,
                "material": p.material,
                "mode": 4,
            });
            if !p.targets.is_empty() {
                let targets: Vec<Value> = p
                    .targets
                    .iter()
                    .map(|t| {
                        let d: Vec<V3> = t.iter().map(|v| turn(*v)).collect();
                        json!({"POSITION": w.vec3(&d, true)})
                    })
                    .collect();
                prim["targets"] = json!(targets);
            }
            prims.push(prim);
        }
        let mut m = json!({"name": mesh.name, "primitives": prims});
        if mesh.morphs {
            m["weights"] = json!(vec![0.0; TARGETS.len()]);
            m["extras"] = json!({"targetNames": TARGETS});
        }
        mesh_json.push(m);
    }

    // Bones: T-pose, translations relative to the parent, inverse bind = minus world position.
    let mut nodes: Vec<Value> = BONES
        .iter()
        .enumerate()
        .map(|(i, (name, parent, p))| {
            let rel = match parent {
                Some(q) => sub(*p, BONES[*q].2),
                None => *p,
            };
            let children: Vec<usize> = BONES
                .iter()
                .enumerate()
                .filter(|(_, b)| b.1 == Some(i))
                .map(|(c, _)| c)
                .collect();
            let mut n = json!({"name": capitalise(name), "translation": turn(rel)});
            if !children.is_empty() {
                n["children"] = json!(children);
            }
            n
        })
        .collect();
    let ibm: Vec<u8> = BONES
        .iter()
        .flat_map(|(_, _, p)| {
            let t = turn(*p);
            [
                1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -t[0], -t[1], -t[2],
                1.0f32,
            ]
        })
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let v = w.view(&ibm, None);
    let a_ibm = w.push(v, 5126, BONES.len(), "MAT4");
    let first_mesh_node = nodes.len();
    for (i, m) in meshes.iter().enumerate() {
        nodes.push(json!({"name": m.name, "mesh": i, "skin": 0}));
    }
    let face_node = first_mesh_node + 1;

    let materials: Vec<Value> = MATERIALS
        .iter()
        .map(|(name, c, rough, emissive, double)| {
            let rgb = [srgb_to_linear(*c, 16), srgb_to_linear(*c, 8), srgb_to_linear(*c, 0)];
            let mut m = json!({
                "name": name,
                "pbrMetallicRoughness": {"baseColorFactor": [rgb[0], rgb[1], rgb[2], 1.0], "metallicFactor": 0.0, "roughnessFactor": rough},
            });
            if *emissive > 0.0 {
                m["emissiveFactor"] = json!(rgb.map(|x| (x * emissive * 10_000.0).round() / 10_000.0));
            }
            if *double {
                m["doubleSided"] = json!(true);
            }
            m
        })
        .collect();

    while !w.bin.len().is_multiple_of(4) {
        w.bin.push(0);
    }
    let mut doc = json!({
        "asset": {"version": "2.0", "generator": "waifu-rt3d default avatar generator"},
        "scene": 0,
        "scenes": [{"name": "Lumi", "nodes": [0, first_mesh_node, first_mesh_node + 1, first_mesh_node + 2]}],
        "nodes": nodes,
        "meshes": mesh_json,
        "materials": materials,
        "skins": [{"joints": (0..BONES.len()).collect::<Vec<_>>(), "inverseBindMatrices": a_ibm, "skeleton": 0}],
        "accessors": w.accessors,
        "bufferViews": w.views,
        "buffers": [{"byteLength": w.bin.len()}],
    });
    match flavour {
        Flavour::Vrm1 => {
            doc["extensionsUsed"] = json!(["VRMC_vrm"]);
            doc["extensions"] = json!({"VRMC_vrm": vrm1_extension(face_node)});
        }
        Flavour::Vrm0 => {
            doc["extensionsUsed"] = json!(["VRM"]);
            doc["extensions"] = json!({"VRM": vrm0_extension(1)});
        }
    }
    glb(&doc, &w.bin)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn vrm1_extension(face_node: usize) -> Value {
    let bones: serde_json::Map<String, Value> = BONES
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| (name.to_string(), json!({"node": i})))
        .collect();
    let presets: serde_json::Map<String, Value> = EXPRESSIONS
        .iter()
        .map(|(name, binds)| {
            let closes_eyes = matches!(*name, "happy" | "relaxed");
            (
                name.to_string(),
                json!({
                    "morphTargetBinds": binds.iter().map(|(t, wt)| json!({"node": face_node, "index": t, "weight": wt})).collect::<Vec<_>>(),
                    "isBinary": false,
                    "overrideBlink": if closes_eyes { "block" } else if *name == "surprised" { "blend" } else { "none" },
                    "overrideLookAt": "none",
                    "overrideMouth": "none",
                }),
            )
        })
        .collect();
    let range = |out: f32| json!({"inputMaxValue": 90.0, "outputScale": out});
    json!({
        "specVersion": "1.0",
        "meta": {
            "name": "Lumi",
            "version": "1",
            "authors": ["waifu-rt3d"],
            "copyrightInformation": "Generated by waifu-rt3d; free to use, change and share (MIT).",
            "licenseUrl": "https://vrm.dev/licenses/1.0/",
            "avatarPermission": "everyone",
            "allowExcessivelyViolentUsage": false,
            "allowExcessivelySexualUsage": false,
            "commercialUsage": "corporation",
            "allowPoliticalOrReligiousUsage": false,
            "allowAntisocialOrHateUsage": false,
            "creditNotation": "unnecessary",
            "allowRedistribution": true,
            "modification": "allowModificationRedistribution",
        },
        "humanoid": {"humanBones": bones},
        "lookAt": {
            "offsetFromHeadBone": [0.0, 0.088, 0.06],
            "type": "bone",
            "rangeMapHorizontalInner": range(12.0),
            "rangeMapHorizontalOuter": range(12.0),
            "rangeMapVerticalDown": range(9.0),
            "rangeMapVerticalUp": range(9.0),
        },
        "expressions": {"preset": presets},
    })
}

fn vrm0_extension(face_mesh: usize) -> Value {
    let bones: Vec<Value> = BONES
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| json!({"bone": name, "node": i, "useDefaultValues": true}))
        .collect();
    let groups: Vec<Value> = EXPRESSIONS
        .iter()
        .map(|(name, binds)| {
            json!({
                "name": name,
                "presetName": preset_v0(name),
                "binds": binds.iter().map(|(t, wt)| json!({"mesh": face_mesh, "index": t, "weight": wt * 100.0})).collect::<Vec<_>>(),
                "materialValues": [],
                "isBinary": false,
            })
        })
        .collect();
    let curve = |y: f32| json!({"curve": [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0], "xRange": 90.0, "yRange": y});
    json!({
        "exporterVersion": "waifu-rt3d",
        "specVersion": "0.0",
        "meta": {
            "title": "Lumi",
            "version": "1",
            "author": "waifu-rt3d",
            "contactInformation": "",
            "reference": "",
            "allowedUserName": "Everyone",
            "violentUssageName": "Disallow",
            "sexualUssageName": "Disallow",
            "commercialUssageName": "Allow",
            "otherPermissionUrl": "",
            "licenseName": "Other",
            "otherLicenseUrl": "https://opensource.org/licenses/MIT",
        },
        "humanoid": {"humanBones": bones},
        "firstPerson": {
            "firstPersonBone": HEAD,
            "firstPersonBoneOffset": {"x": 0.0, "y": 0.088, "z": 0.0},
            "meshAnnotations": [],
            "lookAtTypeName": "Bone",
            "lookAtHorizontalInner": curve(12.0),
            "lookAtHorizontalOuter": curve(12.0),
            "lookAtVerticalDown": curve(9.0),
            "lookAtVerticalUp": curve(9.0),
        },
        "blendShapeMaster": {"blendShapeGroups": groups},
        "secondaryAnimation": {"boneGroups": [], "colliderGroups": []},
        "materialProperties": MATERIALS.iter().map(|(name, ..)| json!({
            "name": name,
            "shader": "VRM_USE_GLTFSHADER",
            "renderQueue": 2000,
            "floatProperties": {},
            "vectorProperties": {},
            "textureProperties": {},
            "keywordMap": {},
            "tagMap": {},
        })).collect::<Vec<_>>(),
    })
}

/// The GLB container: header, JSON chunk (space padded), BIN chunk (zero padded).
fn glb(doc: &Value, bin: &[u8]) -> Vec<u8> {
    let mut json = serde_json::to_vec(doc).unwrap_or_default();
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    let total = 12 + 8 + json.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&json);
    out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    out.extend_from_slice(b"BIN\0");
    out.extend_from_slice(bin);
    out
}

/// The default avatar as VRM 1.0.
pub fn vrm1() -> Vec<u8> {
    build(Flavour::Vrm1)
}

/// The same avatar as VRM 0.x.
pub fn vrm0() -> Vec<u8> {
    build(Flavour::Vrm0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_avatars_are_what_the_generator_makes() {
        // Regenerate with `make default-avatar`.
        assert!(
            vrm1() == include_bytes!("../../../assets/avatars/default.vrm"),
            "assets/avatars/default.vrm is stale"
        );
        assert!(
            vrm0() == include_bytes!("../../../assets/avatars/default-vrm0.vrm"),
            "assets/avatars/default-vrm0.vrm is stale"
        );
        assert!(vrm1() == vrm1(), "the generator is not deterministic");
    }

    #[test]
    fn every_expression_and_required_bone_is_there() {
        let names: Vec<&str> = EXPRESSIONS.iter().map(|e| e.0).collect();
        for e in [
            "aa",
            "ih",
            "ou",
            "ee",
            "oh",
            "blink",
            "blinkLeft",
            "blinkRight",
            "happy",
            "angry",
            "sad",
            "relaxed",
            "surprised",
            "neutral",
        ] {
            assert!(names.contains(&e), "{e}");
        }
        let bones: Vec<&str> = BONES.iter().map(|b| b.0).collect();
        for b in [
            "hips",
            "spine",
            "chest",
            "neck",
            "head",
            "leftUpperArm",
            "leftLowerArm",
            "leftHand",
            "rightUpperArm",
            "rightLowerArm",
            "rightHand",
            "leftUpperLeg",
            "leftLowerLeg",
            "leftFoot",
            "rightUpperLeg",
            "rightLowerLeg",
            "rightFoot",
            "leftEye",
            "rightEye",
        ] {
            assert!(bones.contains(&b), "{b}");
        }
        // Every skinned vertex has weights summing to one, and morphs actually move something.
        let mut features = Mesh::new("Face", true);
        face(&mut features);
        for p in &features.prims {
            for w in &p.weights {
                assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
        for (m, name) in TARGETS.iter().enumerate() {
            let moved = features
                .prims
                .iter()
                .flat_map(|p| &p.targets[m])
                .any(|d| d.iter().any(|c| c.abs() > 1e-4));
            assert!(moved, "morph {name} moves nothing");
        }
    }
}
