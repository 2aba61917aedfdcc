// SVG → PNG with resvg (a Rust renderer shipped as prebuilt binaries in npm
// packages): no browser, no system libraries beyond a font.

/** Fonts resvg tries in order; DejaVu ships with most Linux systems. */
const FONT_FAMILY = 'DejaVu Sans';

export async function svgToPng(svg: string, zoom = 2): Promise<Buffer> {
  // Loaded on first use, so reports without PNGs need no native module.
  const { Resvg } = await import('@resvg/resvg-js');
  const png = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: zoom },
    font: { loadSystemFonts: true, defaultFontFamily: FONT_FAMILY },
  }).render().asPng();
  return Buffer.from(png);
}
