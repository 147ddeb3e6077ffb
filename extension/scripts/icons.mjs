// Renders the extension's icons from store/icon.svg at every size the browsers and stores
// ask for (16, 32, 48, 96, 128), into src/icons/. The PNGs are committed; the build test
// renders them again and compares, so they never drift from the SVG.
//   node scripts/icons.mjs
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Resvg } from "@resvg/resvg-js";

const root = new URL("..", import.meta.url).pathname;
export const ICON_SIZES = [16, 32, 48, 96, 128];

/** The PNG of the icon at `size` pixels. @param {number} size */
export function renderIcon(size) {
  const svg = readFileSync(join(root, "store/icon.svg"), "utf8");
  return new Resvg(svg, { fitTo: { mode: "width", value: size } }).render().asPng();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  mkdirSync(join(root, "src/icons"), { recursive: true });
  for (const size of ICON_SIZES) {
    writeFileSync(join(root, "src/icons", `icon-${size}.png`), renderIcon(size));
  }
  console.log(`icons: ${ICON_SIZES.join(", ")} px in src/icons/`);
}
