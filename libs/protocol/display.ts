// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const UNUSUAL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]|(?![\u200c\u200d])\p{Cf}/gu;

/**
 * A remote-supplied text (file name, peer id) made safe to print: control characters (C0, C1), line
 * separators and invisible format characters (bidi overrides and isolates, zero-width spaces…) are shown
 * as `\u{XXXX}` instead of acting on the terminal or reordering what is displayed. FileNameSchema already
 * refuses such names; this is the second line for anything that reaches a screen.
 */
export function displayText(text: string): string {
  return text.replace(
    UNUSUAL_CHARS,
    (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}}`,
  );
}
