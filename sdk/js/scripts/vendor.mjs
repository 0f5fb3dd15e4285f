// Copies the built SDK (dist/*.js) to examples/demo/web/plato/, where the demo's web chat page
// loads it. Run after `npm run build` when src/ changed; cmd/plato's TestWebChat fails while the
// copy differs from the build.
import { mkdirSync, readdirSync, copyFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dist = fileURLToPath(new URL("../dist/", import.meta.url));
const dest = fileURLToPath(new URL("../../../examples/demo/web/plato/", import.meta.url));
rmSync(dest, { recursive: true, force: true });
mkdirSync(dest, { recursive: true });
for (const f of readdirSync(dist).filter((f) => f.endsWith(".js"))) copyFileSync(dist + f, dest + f);
console.log(`copied dist/*.js to ${dest}`);
