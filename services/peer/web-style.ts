/** The page's stylesheet, served as /assets/app.css (no inline style: the CSP allows 'self' only). */
export const APP_CSS = `:root {
  --fg: #1d2330; --muted: #5d6677; --line: #d9dee7; --bg: #f6f7fa; --card: #fff;
  --accent: #2457c5; --ok: #1f7a3a; --ok-bg: #e3f4e8; --bad: #a52a2a; --bad-bg: #fbe6e6;
  --warn: #7a5200; --warn-bg: #fff4d6;
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 0 24px; }
header { display: flex; align-items: center; gap: 16px; padding-top: 20px; padding-bottom: 8px; }
h1 { font-size: 22px; margin: 0; font-weight: 600; }
h2 { font-size: 17px; margin: 0 0 12px; font-weight: 600; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 13.5px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 13px; font-weight: 600; }
.badge-ok { background: var(--ok-bg); color: var(--ok); }
.badge-bad { background: var(--bad-bg); color: var(--bad); }
.badge-unknown { background: var(--line); color: var(--muted); }
.status { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 10px 24px; margin: 0; }
.status dt { color: var(--muted); font-size: 13px; }
.status dd { margin: 0; overflow-wrap: anywhere; }
form { display: flex; gap: 8px; margin-bottom: 10px; }
input[type=search] { flex: 1; font: inherit; padding: 7px 10px; border: 1px solid var(--line); border-radius: 6px; }
input[type=search]:focus { outline: 2px solid var(--accent); outline-offset: -1px; }
button { font: inherit; padding: 7px 18px; border: 0; border-radius: 6px; background: var(--accent); color: #fff; cursor: pointer; }
button:disabled { opacity: .6; cursor: progress; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 13px; color: var(--muted); font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfd; }
td.name { overflow-wrap: anywhere; }
.num { text-align: right; white-space: nowrap; }
a { color: var(--accent); }
.note { padding: 8px 12px; border-radius: 6px; margin: 8px 0; }
.note-warn { background: var(--warn-bg); color: var(--warn); }
.note-error { background: var(--bad-bg); color: var(--bad); }
.summary { color: var(--muted); margin: 6px 0; }
.self { color: var(--muted); font-size: 12px; margin-left: 6px; }
footer { color: var(--muted); font-size: 13px; padding-bottom: 24px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.row-actions { display: flex; gap: 8px; align-items: center; white-space: nowrap; }
button.small { padding: 3px 12px; font-size: 13px; }
button.secondary { background: var(--line); color: var(--fg); }
label.inline { display: flex; align-items: center; gap: 4px; color: var(--muted); font-size: 13px; white-space: nowrap; }
progress { width: 160px; vertical-align: middle; }
.bytes { white-space: nowrap; }
.state-done { color: var(--ok); font-weight: 600; }
.state-failed { color: var(--bad); font-weight: 600; }
.event-added { color: var(--ok); font-weight: 600; }
.event-removed { color: var(--bad); font-weight: 600; }
td.hash { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; overflow-wrap: anywhere; }
`;
