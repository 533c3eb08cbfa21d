// The JS side of the 3D viewer. three.js objects live here; Rust (src/viewer/) sends typed
// commands as JSON and receives typed events as JSON. Every command answers in an
// {ok, value, error} envelope. Bundled by esbuild into one import-free ES module
// (public/viewer/viewer-bridge.js), loaded lazily by the WASM with a dynamic import.

import {
  Clock,
  Color,
  DirectionalLight,
  HemisphereLight,
  Box3,
  Vector3,
  Object3D,
  PerspectiveCamera,
  Scene,
  SRGBColorSpace,
  NeutralToneMapping,
  WebGLRenderer,
  MeshLambertMaterial,
} from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { VRMLoaderPlugin, VRMUtils } from "@pixiv/three-vrm";

const VISEMES = ["aa", "ih", "ou", "ee", "oh"];
const BLINKS = ["blink", "blinkLeft", "blinkRight"];

const ok = (value) => JSON.stringify({ ok: true, value: value ?? null });
const fail = (error) => JSON.stringify({ ok: false, error: String(error) });

/**
 * Creates a viewer on the <canvas> inside `root`. `emit(json)` receives events:
 * {type:"progress", loaded, total} | {type:"loaded", url, vrm:"0"|"1"|"gltf", expressions}
 * | {type:"error", url, message} | {type:"context_lost"} | {type:"context_restored"}.
 */
export function createViewer(root, emit) {
  const canvas = root.querySelector("canvas");
  if (!canvas) throw new Error("the viewer element has no <canvas>");
  const send = (event) => {
    try {
      emit(JSON.stringify(event));
    } catch (e) {
      console.error("viewer event handler failed", e);
    }
  };

  // On a software rasteriser (no GPU) every pixel costs CPU time the page needs for itself:
  // no multisampling, one pixel per CSS pixel and fewer frames there.
  const software = softwareGl();
  root.dataset.gl = software ? "software" : "gpu";
  const renderer = new WebGLRenderer({ canvas, antialias: !software, alpha: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(software ? 1 : Math.min(window.devicePixelRatio || 1, 2));
  renderer.outputColorSpace = SRGBColorSpace;
  renderer.toneMapping = NeutralToneMapping;
  renderer.toneMappingExposure = 1.05;

  const scene = new Scene();
  const camera = new PerspectiveCamera(30, 1, 0.05, 50);
  camera.position.set(0, 1.3, 1.2);
  const controls = new OrbitControls(camera, canvas);
  controls.enableDamping = true;
  controls.enablePan = false;
  controls.minDistance = 0.4;
  controls.maxDistance = 4;
  controls.target.set(0, 1.25, 0);

  // Soft three-point light for a dark page: warm key, cool fill, bright rim from behind.
  scene.add(new HemisphereLight(new Color(0xe6ecff), new Color(0x6a5a78), 1.3));
  const key = new DirectionalLight(new Color(0xfff1e6), 2.2);
  key.position.set(1.2, 2.2, 2.0);
  const fill = new DirectionalLight(new Color(0xc4d0ff), 1.0);
  fill.position.set(-2.0, 0.6, 1.6);
  const rim = new DirectionalLight(new Color(0xc9b6ff), 1.6);
  rim.position.set(-0.6, 2.0, -2.2);
  scene.add(key, fill, rim);

  const lookTarget = new Object3D();
  scene.add(lookTarget);

  const loader = new GLTFLoader();
  loader.register((parser) => new VRMLoaderPlugin(parser));

  let current = null; // { root, vrm }
  let loadToken = 0;
  let disposed = false;
  let contextLost = false;
  const clock = new Clock();
  let elapsed = 0;

  // Expression layer: each name fades from `from` to `to` over `dur` seconds.
  const fades = new Map();
  const weights = new Map();
  // Mouth layer: written after expressions every frame.
  const mouth = { aa: 0, ih: 0, ou: 0, ee: 0, oh: 0 };
  let mouthShown = "";
  // Idle motion.
  let nextBlink = 2 + Math.random() * 4;
  let blinkStart = -1;
  const pointer = { x: 0, y: 0, sx: 0, sy: 0 };

  function resize() {
    const w = Math.max(1, root.clientWidth);
    const h = Math.max(1, root.clientHeight);
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  }
  const observer = typeof ResizeObserver === "function" ? new ResizeObserver(resize) : null;
  observer?.observe(root);
  resize();

  function onPointer(e) {
    const r = canvas.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return;
    pointer.x = Math.max(-1.5, Math.min(1.5, ((e.clientX - r.left) / r.width) * 2 - 1));
    pointer.y = Math.max(-1.5, Math.min(1.5, -(((e.clientY - r.top) / r.height) * 2 - 1)));
  }
  window.addEventListener("pointermove", onPointer, { passive: true });

  function onLost(e) {
    e.preventDefault();
    contextLost = true;
    send({ type: "context_lost" });
  }
  function onRestored() {
    contextLost = false;
    send({ type: "context_restored" });
  }
  canvas.addEventListener("webglcontextlost", onLost);
  canvas.addEventListener("webglcontextrestored", onRestored);

  function frameModel(obj, vrm) {
    scene.updateMatrixWorld(true);
    const head = vrm?.humanoid?.getNormalizedBoneNode("head");
    const target = new Vector3();
    let distance;
    if (head) {
      head.getWorldPosition(target);
      target.y -= 0.09;
      distance = 1.35;
    } else {
      const box = new Box3().setFromObject(obj);
      box.getCenter(target);
      const size = box.getSize(new Vector3()).length() || 1;
      distance = size * 1.4;
    }
    controls.target.copy(target);
    camera.position.set(target.x, target.y + 0.05, target.z + distance);
    camera.near = Math.max(0.01, distance / 100);
    camera.far = distance * 50;
    camera.updateProjectionMatrix();
    controls.update();
  }

  function unload() {
    if (!current) return;
    scene.remove(current.root);
    VRMUtils.deepDispose(current.root);
    current = null;
    fades.clear();
    weights.clear();
  }

  // VRM 0.x models face -Z, so their normalized rotations about X and Z have the other sign.
  let flip = 1;

  function restPose(vrm) {
    const h = vrm.humanoid;
    if (!h) return;
    const set = (name, x, y, z) => {
      const b = h.getNormalizedBoneNode(name);
      if (b) b.rotation.set(x * flip, y, z * flip);
    };
    // Arms down from the T-pose, elbows slightly bent.
    set("leftUpperArm", 0, 0, -1.22);
    set("rightUpperArm", 0, 0, 1.22);
    set("leftLowerArm", 0, -0.15, -0.1);
    set("rightLowerArm", 0, 0.15, 0.1);
  }

  // Physically based shading is the most expensive part of a frame on a software rasteriser
  // (five times the cost of Lambert for the default avatar); there, standard materials become
  // Lambert ones with the same colours and textures. MToon and other materials stay as they are.
  function cheaperMaterials(root) {
    root.traverse((o) => {
      if (!o.isMesh) return;
      const swap = (m) => {
        if (!m?.isMeshStandardMaterial) return m;
        const lambert = new MeshLambertMaterial();
        for (const k of ["name", "color", "map", "emissive", "emissiveMap", "emissiveIntensity", "normalMap",
          "alphaMap", "aoMap", "transparent", "opacity", "alphaTest", "side", "vertexColors", "depthWrite"]) {
          if (m[k] !== undefined) lambert[k] = m[k]?.isColor ? m[k].clone() : m[k];
        }
        m.dispose();
        return lambert;
      };
      o.material = Array.isArray(o.material) ? o.material.map(swap) : swap(o.material);
    });
  }

  function load(url) {
    const token = ++loadToken;
    loader.load(
      url,
      (gltf) => {
        if (disposed || token !== loadToken) {
          VRMUtils.deepDispose(gltf.scene);
          return;
        }
        unload();
        const vrm = gltf.userData.vrm || null;
        let version = "gltf";
        let expressions = [];
        if (vrm) {
          VRMUtils.removeUnnecessaryVertices(gltf.scene);
          if (VRMUtils.combineSkeletons) VRMUtils.combineSkeletons(gltf.scene);
          version = vrm.meta?.metaVersion === "0" ? "0" : "1";
          if (version === "0") VRMUtils.rotateVRM0(vrm);
          flip = version === "0" ? -1 : 1;
          vrm.scene.traverse((o) => {
            o.frustumCulled = false;
          });
          if (software) cheaperMaterials(gltf.scene);
          if (vrm.lookAt) vrm.lookAt.target = lookTarget;
          restPose(vrm);
          expressions = (vrm.expressionManager?.expressions ?? []).map((e) => e.expressionName);
          vrm.update(0);
        }
        scene.add(gltf.scene);
        current = { root: gltf.scene, vrm };
        frameModel(gltf.scene, vrm);
        nextBlink = elapsed + 2 + Math.random() * 4;
        send({ type: "loaded", url, vrm: version, expressions });
      },
      (p) => {
        if (token === loadToken) send({ type: "progress", loaded: p.loaded || 0, total: p.total || 0 });
      },
      (err) => {
        if (token !== loadToken || disposed) return;
        send({ type: "error", url, message: describe(err) });
      },
    );
  }

  function setExpression(name, weight, fadeMs) {
    const from = weights.get(name) ?? 0;
    const to = Math.max(0, Math.min(1, Number(weight) || 0));
    const dur = Math.max(0, Number(fadeMs) || 0) / 1000;
    if (dur === 0) {
      fades.delete(name);
      weights.set(name, to);
    } else {
      fades.set(name, { from, to, start: elapsed, dur });
    }
  }

  // 30 frames a second is plenty for idle motion and lip sync; a software rasteriser gets 20,
  // so that the page's own work is not starved by the render loop.
  const FRAME = software ? 1 / 20 : 1 / 30;
  let sinceFrame = FRAME;
  // Frames drawn, published every tenth frame as data-frames (for the benchmark).
  let frames = 0;
  // Nothing is drawn while the canvas is scrolled out of view or its tab is hidden.
  let onScreen = true;
  const visibility =
    typeof IntersectionObserver === "function"
      ? new IntersectionObserver((entries) => {
          for (const e of entries) onScreen = e.isIntersecting;
        })
      : null;
  visibility?.observe(canvas);

  function tick() {
    if (disposed) return;
    requestAnimationFrame(tick);
    if (contextLost || document.hidden || !onScreen) {
      clock.getDelta();
      return;
    }
    sinceFrame += clock.getDelta();
    if (sinceFrame < FRAME * 0.9) return;
    const dt = Math.min(sinceFrame, 0.1);
    sinceFrame = 0;
    elapsed += dt;
    const vrm = current?.vrm;
    if (vrm) animate(vrm, dt);
    controls.update();
    renderer.render(scene, camera);
    frames++;
    if (frames % 10 === 0) root.dataset.frames = String(frames);
  }

  function animate(vrm, dt) {
    const t = elapsed;
    const h = vrm.humanoid;
    // Breathing and a slow sway.
    const bone = (n) => h?.getNormalizedBoneNode(n);
    const breath = Math.sin(t * ((2 * Math.PI) / 4.2));
    const chest = bone("chest") || bone("spine");
    if (chest) chest.rotation.x = flip * breath * 0.015;
    const spine = bone("spine");
    if (spine) spine.rotation.z = flip * Math.sin(t * 0.6) * 0.02;
    const hips = bone("hips");
    if (hips) hips.rotation.y = Math.sin(t * 0.37) * 0.03;
    for (const [side, s] of [["left", -1], ["right", 1]]) {
      const arm = bone(`${side}UpperArm`);
      if (arm) arm.rotation.z = flip * s * (1.22 + breath * 0.02);
    }
    // Eyes follow the pointer; the head turns a little towards it.
    pointer.sx += (pointer.x - pointer.sx) * Math.min(1, dt * 6);
    pointer.sy += (pointer.y - pointer.sy) * Math.min(1, dt * 6);
    lookTarget.position.set(
      camera.position.x + pointer.sx * 0.6,
      camera.position.y + pointer.sy * 0.4,
      camera.position.z,
    );
    const neck = bone("neck");
    if (neck) {
      neck.rotation.y = pointer.sx * 0.18;
      neck.rotation.x = -flip * pointer.sy * 0.1;
    }

    const em = vrm.expressionManager;
    if (em) {
      // Expression fades.
      for (const [name, f] of fades) {
        const k = Math.min(1, (t - f.start) / f.dur);
        const eased = k * k * (3 - 2 * k);
        weights.set(name, f.from + (f.to - f.from) * eased);
        if (k >= 1) fades.delete(name);
      }
      for (const [name, w] of weights) {
        if (!VISEMES.includes(name) && !BLINKS.includes(name)) em.setValue(name, w);
      }
      // Idle blink every 2-6 s, unless a blink weight was set explicitly.
      let blink = weights.get("blink") ?? 0;
      if (t >= nextBlink && blinkStart < 0) blinkStart = t;
      if (blinkStart >= 0) {
        const k = (t - blinkStart) / 0.16;
        blink = Math.max(blink, k < 0.5 ? k * 2 : Math.max(0, 2 - k * 2));
        if (k >= 1) {
          blinkStart = -1;
          nextBlink = t + 2 + Math.random() * 4;
        }
      }
      em.setValue("blink", blink);
      em.setValue("blinkLeft", weights.get("blinkLeft") ?? 0);
      em.setValue("blinkRight", weights.get("blinkRight") ?? 0);
      // The mouth layer last, so that nothing above overwrites it.
      for (const v of VISEMES) em.setValue(v, Math.max(mouth[v], weights.get(v) ?? 0));
    }
    vrm.update(dt);
    const shown = JSON.stringify(mouth);
    if (shown !== mouthShown) {
      mouthShown = shown;
      root.dataset.mouth = shown;
    }
    // The strongest emotion on the face (above half weight), for tests and styling.
    let face = "";
    let strongest = 0.5;
    for (const [name, w] of weights) {
      if (w > strongest && !VISEMES.includes(name) && !BLINKS.includes(name)) {
        face = name;
        strongest = w;
      }
    }
    if (root.dataset.expression !== face) root.dataset.expression = face;
  }
  root.dataset.mouth = JSON.stringify(mouth);
  requestAnimationFrame(tick);

  function dispose() {
    if (disposed) return;
    disposed = true;
    loadToken++;
    observer?.disconnect();
    visibility?.disconnect();
    window.removeEventListener("pointermove", onPointer);
    canvas.removeEventListener("webglcontextlost", onLost);
    canvas.removeEventListener("webglcontextrestored", onRestored);
    unload();
    controls.dispose();
    renderer.dispose();
    // Give the WebGL context back now rather than when the page is collected.
    renderer.forceContextLoss();
  }

  return {
    /** Runs one JSON command and answers with a JSON envelope. */
    command(json) {
      let c;
      try {
        c = JSON.parse(json);
      } catch (e) {
        return fail(`not a command: ${e}`);
      }
      if (disposed && c.cmd !== "dispose") return fail("the viewer was disposed");
      try {
        switch (c.cmd) {
          case "load":
            load(String(c.url));
            return ok();
          case "expression":
            setExpression(String(c.name), c.weight, c.fade_ms);
            return ok();
          case "mouth":
            for (const v of VISEMES) mouth[v] = Math.max(0, Math.min(1, Number(c[v]) || 0));
            return ok();
          case "look_at":
            pointer.x = Number(c.x) || 0;
            pointer.y = Number(c.y) || 0;
            return ok();
          case "resize":
            resize();
            return ok();
          case "dispose":
            dispose();
            return ok();
          case "state":
            return ok({
              loaded: Boolean(current),
              vrm: current?.vrm ? current.vrm.meta?.metaVersion ?? "1" : current ? "gltf" : null,
              expressions: Object.fromEntries(weights),
            });
          default:
            return fail(`unknown command ${c.cmd}`);
        }
      } catch (e) {
        return fail(e?.message ?? e);
      }
    },
  };
}

let softwareGlCache = null;

/** Whether WebGL runs on a CPU rasteriser (SwiftShader, llvmpipe): asked once per page. */
function softwareGl() {
  if (softwareGlCache !== null) return softwareGlCache;
  softwareGlCache = false;
  try {
    const gl = document.createElement("canvas").getContext("webgl2");
    if (gl) {
      const info = gl.getExtension("WEBGL_debug_renderer_info");
      const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
      softwareGlCache = /swiftshader|llvmpipe|softpipe|software/i.test(name);
      gl.getExtension("WEBGL_lose_context")?.loseContext();
    }
  } catch {
    // No answer: assume a GPU.
  }
  return softwareGlCache;
}

/** A short reason a person can read: 404s, non-glTF files, parse errors. */
function describe(err) {
  const msg = String(err?.message ?? err ?? "unknown error");
  if (/responded with 404|status 404/i.test(msg)) return "The avatar file was not found (404).";
  const http = msg.match(/responded with (\d{3})/);
  if (http) return `The server answered ${http[1]} for the avatar file.`;
  if (/Unexpected token|JSON|magic|Unsupported asset|glTF versions/i.test(msg))
    return `The file is not a valid glTF/VRM model (${msg.slice(0, 160)}).`;
  return `The avatar could not be loaded: ${msg.slice(0, 200)}`;
}
