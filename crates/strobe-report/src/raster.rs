//! SVG → PNG with `resvg`, for `strobe plot --format png`. Text is set in the machine's fonts
//! (`sans-serif` is mapped to the first of DejaVu Sans, Liberation Sans, Noto Sans, Arial that is
//! installed); without any font the chart's lines are drawn and its text is missing.

/// Renders `svg` at `scale` × its size (2 for slides and high-DPI screens) as PNG bytes.
pub fn png(svg: &str, scale: f32) -> Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_system_fonts();
    let families: Vec<String> = db
        .faces()
        .flat_map(|f| f.families.iter().map(|(n, _)| n.clone()))
        .collect();
    if let Some(f) = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "Arial"]
        .into_iter()
        .find(|f| families.iter().any(|n| n == f))
    {
        db.set_sans_serif_family(f);
    }
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| format!("not a valid SVG: {e}"))?;
    let size = tree.size().to_int_size();
    let (w, h) = (
        (size.width() as f32 * scale).ceil() as u32,
        (size.height() as f32 * scale).ceil() as u32,
    );
    let mut pixmap =
        tiny_skia::Pixmap::new(w, h).ok_or_else(|| format!("cannot make a {w}×{h} picture"))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| e.to_string())
}

/// Whether text will show in rasterised charts (some sans-serif font is installed).
pub fn has_fonts() -> bool {
    let mut db = resvg::usvg::fontdb::Database::new();
    db.load_system_fonts();
    !db.is_empty()
}
