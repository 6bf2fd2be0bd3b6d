//! Colours, from `themes/*.toml` (built in) and `<config dir>/polaris-tui/themes/*.toml`
//! (the user's, which may replace a built-in one by name). NO_COLOR (any non-empty value)
//! gives the monochrome theme: every distinction is also made by a modifier or a marker.
//! Themes are written in 24-bit colour; unless the terminal says it has it (COLORTERM
//! `truecolor` / `24bit`, which ssh does not pass on by default), each colour is drawn as its
//! nearest in the xterm 256-colour palette, which every terminal and tmux understand.

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

const BUILT_IN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("high-contrast", include_str!("../../themes/high-contrast.toml")),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub fg: Color,
    pub bg: Color,
    pub dim: Color,
    pub border: Color,
    pub title: Color,
    /// Active tab, the human reference, key names.
    pub accent: Color,
    pub selection_bg: Color,
    pub good: Color,
    pub warn: Color,
    pub bad: Color,
    /// Quoted judge evidence in a story.
    pub evidence_bg: Color,
    pub policy: Color,
    pub band: Color,
    pub reference: Color,
    pub best: Color,
    /// The validation curve.
    pub validation: Color,
    pub length: Color,
    pub loss: Color,
    pub kl: Color,
    pub grad: Color,
    pub lr: Color,
    pub hri: Color,
    pub generate: Color,
    pub judge: Color,
    pub train: Color,
    /// Monochrome: colours are all `Reset`, modifiers carry the meaning.
    pub mono: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: String,
    colors: Colors,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Colors {
    fg: String,
    bg: String,
    dim: String,
    border: String,
    title: String,
    accent: String,
    selection_bg: String,
    good: String,
    warn: String,
    bad: String,
    evidence_bg: String,
    policy: String,
    band: String,
    reference: String,
    best: String,
    /// Optional, so themes written before the validation curve still load: `title` then.
    #[serde(default)]
    validation: Option<String>,
    length: String,
    loss: String,
    kl: String,
    grad: String,
    lr: String,
    hri: String,
    generate: String,
    judge: String,
    train: String,
}

impl Theme {
    /// Parses a theme file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let f: ThemeFile = toml::from_str(text).with_context(|| format!("{origin}: not a theme"))?;
        let c = |field: &str, v: &str| -> Result<Color> {
            Color::from_str(v).map_err(|_| {
                anyhow::anyhow!("{origin}: colors.{field} = {v:?} is not a colour (a name such as \"red\", or \"#rrggbb\")")
            })
        };
        let k = &f.colors;
        Ok(Self {
            name: f.name,
            fg: c("fg", &k.fg)?,
            bg: c("bg", &k.bg)?,
            dim: c("dim", &k.dim)?,
            border: c("border", &k.border)?,
            title: c("title", &k.title)?,
            accent: c("accent", &k.accent)?,
            selection_bg: c("selection_bg", &k.selection_bg)?,
            good: c("good", &k.good)?,
            warn: c("warn", &k.warn)?,
            bad: c("bad", &k.bad)?,
            evidence_bg: c("evidence_bg", &k.evidence_bg)?,
            policy: c("policy", &k.policy)?,
            band: c("band", &k.band)?,
            reference: c("reference", &k.reference)?,
            best: c("best", &k.best)?,
            validation: c("validation", k.validation.as_ref().unwrap_or(&k.title))?,
            length: c("length", &k.length)?,
            loss: c("loss", &k.loss)?,
            kl: c("kl", &k.kl)?,
            grad: c("grad", &k.grad)?,
            lr: c("lr", &k.lr)?,
            hri: c("hri", &k.hri)?,
            generate: c("generate", &k.generate)?,
            judge: c("judge", &k.judge)?,
            train: c("train", &k.train)?,
            mono: false,
        })
    }

    pub fn built_in(name: &str) -> Option<Self> {
        BUILT_IN.iter().find(|(n, _)| *n == name).map(|(n, text)| {
            Self::parse(text, &format!("themes/{n}.toml")).expect("the built-in themes parse (tested)")
        })
    }

    /// The same theme with every 24-bit colour replaced by its nearest 256-palette colour.
    pub fn to_256(&self) -> Self {
        let f = |c: Color| match c {
            Color::Rgb(r, g, b) => Color::Indexed(nearest_256(r, g, b)),
            other => other,
        };
        Self {
            name: self.name.clone(),
            fg: f(self.fg),
            bg: f(self.bg),
            dim: f(self.dim),
            border: f(self.border),
            title: f(self.title),
            accent: f(self.accent),
            selection_bg: f(self.selection_bg),
            good: f(self.good),
            warn: f(self.warn),
            bad: f(self.bad),
            evidence_bg: f(self.evidence_bg),
            policy: f(self.policy),
            band: f(self.band),
            reference: f(self.reference),
            best: f(self.best),
            validation: f(self.validation),
            length: f(self.length),
            loss: f(self.loss),
            kl: f(self.kl),
            grad: f(self.grad),
            lr: f(self.lr),
            hri: f(self.hri),
            generate: f(self.generate),
            judge: f(self.judge),
            train: f(self.train),
            mono: self.mono,
        }
    }

    /// NO_COLOR: the terminal's own colours.
    pub fn mono() -> Self {
        let r = Color::Reset;
        Self {
            name: "no-color".into(),
            fg: r,
            bg: r,
            dim: r,
            border: r,
            title: r,
            accent: r,
            selection_bg: r,
            good: r,
            warn: r,
            bad: r,
            evidence_bg: r,
            policy: r,
            band: r,
            reference: r,
            best: r,
            validation: r,
            length: r,
            loss: r,
            kl: r,
            grad: r,
            lr: r,
            hri: r,
            generate: r,
            judge: r,
            train: r,
            mono: true,
        }
    }

    pub fn base(&self) -> Style {
        Style::default().fg(self.fg).bg(self.bg)
    }
    pub fn dim(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::DIM)
        } else {
            Style::default().fg(self.dim)
        }
    }
    pub fn border(&self) -> Style {
        Style::default().fg(self.border)
    }
    pub fn title(&self) -> Style {
        Style::default().fg(self.title).add_modifier(Modifier::BOLD)
    }
    pub fn accent(&self) -> Style {
        Style::default().fg(self.accent).add_modifier(Modifier::BOLD)
    }
    /// The human reference's row: accent colour, and bold so it shows without colour too.
    pub fn reference_row(&self) -> Style {
        Style::default().fg(self.reference).add_modifier(Modifier::BOLD)
    }
    pub fn selected(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default().bg(self.selection_bg).add_modifier(Modifier::BOLD)
        }
    }
    pub fn evidence(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::UNDERLINED | Modifier::BOLD)
        } else {
            Style::default().bg(self.evidence_bg).fg(self.fg).add_modifier(Modifier::UNDERLINED)
        }
    }
    pub fn fg(&self, c: Color) -> Style {
        Style::default().fg(c)
    }
}

/// Every theme on offer: NO_COLOR's monochrome one alone when it is set; else the built-in
/// themes, then the user's (a user theme named like a built-in one replaces it). A user theme
/// that does not parse is skipped and reported. Colours fit the terminal (`truecolor`).
pub fn available(user_dir: Option<&Path>) -> (Vec<Theme>, Vec<String>) {
    let (themes, problems) =
        available_with(std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()), user_dir);
    let fitted = if truecolor() { themes } else { themes.iter().map(Theme::to_256).collect() };
    (fitted, problems)
}

/// Whether the terminal says it draws 24-bit colour.
pub fn truecolor() -> bool {
    std::env::var("COLORTERM").is_ok_and(|v| v == "truecolor" || v == "24bit")
}

/// The nearest xterm 256-colour palette index to an RGB colour: the 6x6x6 cube (16..=231,
/// levels 0, 95, 135, ..., 255) or the grey ramp (232..=255, 8, 18, ..., 238), whichever is
/// closer in RGB distance. The first 16 are left out: terminals redefine them.
pub fn nearest_256(r: u8, g: u8, b: u8) -> u8 {
    const LEVELS: [i32; 6] = [0, 95, 135, 175, 215, 255];
    let level = |v: u8| (0..6).min_by_key(|&i| (LEVELS[i] - v as i32).abs()).expect("six levels") as u8;
    let (ri, gi, bi) = (level(r), level(g), level(b));
    let cube = [LEVELS[ri as usize], LEVELS[gi as usize], LEVELS[bi as usize]];
    let mean = (r as i32 + g as i32 + b as i32) / 3;
    let grey_index = ((mean - 8 + 5) / 10).clamp(0, 23);
    let grey = 8 + 10 * grey_index;
    let dist = |c: [i32; 3]| {
        let d = [c[0] - r as i32, c[1] - g as i32, c[2] - b as i32];
        d.iter().map(|x| x * x).sum::<i32>()
    };
    if dist([grey; 3]) < dist(cube) {
        232 + grey_index as u8
    } else {
        16 + 36 * ri + 6 * gi + bi
    }
}

/// `available`, with NO_COLOR's answer given.
pub fn available_with(no_color: bool, user_dir: Option<&Path>) -> (Vec<Theme>, Vec<String>) {
    if no_color {
        return (vec![Theme::mono()], vec![]);
    }
    let mut themes: Vec<Theme> = BUILT_IN.iter().filter_map(|(n, _)| Theme::built_in(n)).collect();
    let mut problems = Vec::new();
    if let Some(dir) = user_dir {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
            let parsed = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))
                .and_then(|t| Theme::parse(&t, &path.display().to_string()));
            match parsed {
                Ok(t) => match themes.iter_mut().find(|x| x.name == t.name) {
                    Some(slot) => *slot = t,
                    None => themes.push(t),
                },
                Err(e) => problems.push(format!("{e:#}; the theme is skipped")),
            }
        }
    }
    (themes, problems)
}

/// `<config dir>/polaris-tui/themes`.
pub fn user_dir() -> Option<std::path::PathBuf> {
    dirs::config_dir().map(|d| d.join("polaris-tui").join("themes"))
}

/// The index of the theme called `name`.
pub fn find(themes: &[Theme], name: &str) -> Result<usize> {
    match themes.iter().position(|t| t.name == name) {
        Some(i) => Ok(i),
        None => {
            let names: Vec<&str> = themes.iter().map(|t| t.name.as_str()).collect();
            bail!("--theme {name:?}: no such theme; there are {}", names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rgb_colours_map_to_their_nearest_256_palette_entries() {
        use super::nearest_256;
        // exact palette colours map to themselves: cube corners, a cube inner point, greys
        assert_eq!(nearest_256(0, 0, 0), 16);
        assert_eq!(nearest_256(255, 255, 255), 231);
        assert_eq!(nearest_256(255, 0, 0), 196);
        assert_eq!(nearest_256(95, 135, 175), 16 + 36 + 2 * 6 + 3);
        assert_eq!(nearest_256(128, 128, 128), 232 + 12);
        assert_eq!(nearest_256(8, 8, 8), 232);
        // near a grey, off the cube: the grey ramp wins (cube level 95 is 67 away from 28)
        assert_eq!(nearest_256(30, 28, 27), 232 + 2);
        // a colour between cube levels goes to the nearer level per channel
        assert_eq!(nearest_256(250, 120, 10), 16 + 36 * 5 + 6 * 2);
    }

    #[test]
    fn a_theme_in_256_colours_has_no_rgb_left() {
        use ratatui::style::Color;
        let t = super::Theme::built_in("dark").unwrap().to_256();
        let all = [t.fg, t.bg, t.accent, t.policy, t.reference, t.evidence_bg, t.train];
        assert!(all.iter().all(|c| !matches!(c, Color::Rgb(..))), "{all:?}");
        assert_eq!(t.name, "dark");
    }

    use super::*;

    #[test]
    fn every_built_in_theme_parses() {
        for (name, _) in BUILT_IN {
            assert_eq!(Theme::built_in(name).unwrap().name, name);
        }
    }

    #[test]
    fn a_bad_colour_is_named_with_its_file_and_field() {
        let text = include_str!("../../themes/dark.toml").replace("accent = ", "accent = \"mauvish\" #");
        let e = Theme::parse(&text, "my.toml").unwrap_err().to_string();
        assert!(e.contains("my.toml") && e.contains("colors.accent") && e.contains("mauvish"), "{e}");
    }

    #[test]
    fn a_user_theme_replaces_a_built_in_one_and_a_broken_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mine = include_str!("../../themes/dark.toml").replace("name = \"dark\"", "name = \"light\"");
        std::fs::write(dir.path().join("a.toml"), mine).unwrap();
        std::fs::write(dir.path().join("b.toml"), "name = 3").unwrap();
        let (themes, problems) = available_with(false, Some(dir.path()));
        assert_eq!(themes.len(), 3);
        assert_eq!(themes[1], Theme { name: "light".into(), ..Theme::built_in("dark").unwrap() });
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("b.toml"), "{}", problems[0]);
        let (themes, _) = available_with(true, Some(dir.path()));
        assert_eq!(themes, vec![Theme::mono()], "NO_COLOR: the monochrome theme alone");
    }
}
