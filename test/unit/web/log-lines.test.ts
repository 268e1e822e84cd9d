/** The log view's model: lines indexed and searched a slice at a time, colours carried across lines. */
import { describe, expect, it } from "vitest";
import { colourAfter, LogLines, searchText } from "../../../src/web/log-lines.js";

const ESC = String.fromCharCode(27);
const GREEN = `${ESC}[32m`;
const RESET = `${ESC}[0m`;

/** Works until done, one slice at a time, each slice given a clock that has already run out. */
function drain(lines: LogLines): number {
  let slices = 1;
  while (!lines.work(0, () => 1)) slices++;
  return slices;
}

function shownText(lines: LogLines): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines.count; i++) {
    const row = lines.shown(i)!.row;
    out.push(typeof row === "string" ? row : `# ${row.title}`);
  }
  return out;
}

describe("LogLines", () => {
  it("indexes text however it is cut, with the section headers", () => {
    const lines = new LogLines(1_000);
    lines.push("==> build (attempt 1) <==\n2026-12-05T10:00:00.000Z out one\n2026-12-05T10:0");
    lines.push("0:01.000Z err two\nthree");
    lines.push("\n");
    drain(lines);
    expect(shownText(lines)).toEqual([
      "# build (attempt 1)",
      "2026-12-05T10:00:00.000Z out one",
      "2026-12-05T10:00:01.000Z err two",
      "three",
    ]);
    expect(lines.tailed).toBe(false);
  });

  it("search over a log larger than one slice finds a line near its end", () => {
    const lines = new LogLines(100_000);
    const text: string[] = ["==> print (attempt 1) from byte 1234 <=="];
    for (let i = 0; i < 50_000; i++)
      text.push(`2026-12-05T10:00:00.000Z out ${GREEN}${i}${RESET} compile line ${i}`);
    text.push("2026-12-05T10:00:00.000Z out the Needle is here", "2026-12-05T10:00:00.000Z out after it");
    lines.push(`${text.join("\n")}\n`);
    expect(drain(lines)).toBeGreaterThan(10);
    expect(lines.tailed).toBe(true);
    lines.search("NEEDLE");
    expect(lines.count).toBe(0);
    expect(drain(lines)).toBeGreaterThan(10);
    expect(shownText(lines)).toEqual([
      "# print (attempt 1) from byte 1234",
      "2026-12-05T10:00:00.000Z out the Needle is here",
    ]);
    // Colour codes and the time prefix are not searched; what is seen is.
    lines.search("32m");
    drain(lines);
    expect(lines.count).toBe(0);
    lines.search("4999 Compile line 4999");
    drain(lines);
    expect(shownText(lines).slice(1)).toEqual([
      `2026-12-05T10:00:00.000Z out ${GREEN}4999${RESET} compile line 4999`,
    ]);
    // Lines arriving later are searched too.
    lines.push("2026-12-05T10:00:00.000Z out NEEDLE again\n");
    lines.search("needle");
    drain(lines);
    expect(lines.count).toBe(3);
  });

  it("keeps the newest rows, counting the dropped lines, with the header of the section they were cut from", () => {
    const lines = new LogLines(10);
    lines.push("==> a <==\n");
    for (let i = 0; i < 25; i++) lines.push(`line ${i}\n`);
    drain(lines);
    const shown = shownText(lines);
    expect(shown).toHaveLength(10);
    expect(shown[0]).toBe("# a");
    expect(shown.at(-1)).toBe("line 24");
    expect(lines.dropped).toBe(16);
  });

  it("carries colours across lines until a reset, and starts each section without", () => {
    expect(colourAfter("", "plain")).toBe("");
    expect(colourAfter("", `${GREEN}green`)).toBe(GREEN);
    expect(colourAfter(GREEN, `still ${ESC}[1mbold`)).toBe(`${GREEN}${ESC}[1m`);
    expect(colourAfter(GREEN, `back ${RESET}`)).toBe("");
    expect(colourAfter(GREEN, `${ESC}[0;31mred`)).toBe(`${ESC}[0;31m`);
    expect(colourAfter("", `${ESC}[38;5;0mblack`)).toBe(`${ESC}[38;5;0m`);
    let state = "";
    for (let i = 0; i < 1_000; i++) state = colourAfter(state, `${ESC}[3${i % 8}m`);
    expect(state.length).toBeLessThanOrEqual(200);

    const lines = new LogLines(100);
    lines.push(`==> a <==\n${GREEN}one\ntwo${RESET}\nthree\n${GREEN}four\n==> b <==\nfive\n`);
    drain(lines);
    const colours = Array.from({ length: lines.count }, (_, i) => lines.shown(i)!.colour);
    expect(colours).toEqual(["", "", GREEN, "", "", "", ""]);
  });

  it("searches the text without its time prefix and colour codes, lowered", () => {
    expect(searchText(`2026-12-05T10:00:00.123Z err ${GREEN}Built${RESET} OK`)).toBe("built ok");
    expect(searchText("no prefix HERE")).toBe("no prefix here");
  });
});
