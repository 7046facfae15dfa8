// Shows what is wrong with the form next to the field it is about, the accessible way: the
// input gets aria-invalid="true" and aria-describedby naming its message, so that assistive
// technology reads the message with the field (WAI-ARIA 1.2, aria-invalid; WCAG 2.2, 3.3.1).
// The page's own check (protovalidate) and the server's google.rpc.BadRequest both end here,
// so a problem reads the same whichever side found it.

/** One problem: `field` is the request field's path as protovalidate renders it ("name",
 * "languages[1]"), `description` what is wrong with it. */
export type FieldProblem = { field: string; description: string };

// A path's first segment: the request field's name, which is also the name of the form's
// input for it (name="languages" for "languages[1]").
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

function inputFor(form: HTMLFormElement, path: string): HTMLInputElement | undefined {
  const name = FIELD_NAME.exec(path)?.[0];
  const input = name === undefined ? null : form.elements.namedItem(name);
  return input instanceof HTMLInputElement ? input : undefined;
}

// The element that holds an input's messages: #<input id>-error, next to the input.
function messageFor(input: HTMLInputElement): HTMLElement {
  const id = `${input.id}-error`;
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id} for #${input.id}`);
  return found;
}

/** Marks each input that problems are about and shows its messages next to it, one a line:
 * the description alone for the field itself, prefixed with the path for a part of it
 * ("languages[1]: ..."). Problems about no input of the form are left to the caller. Returns
 * the marked inputs in the order of the problems. */
export function showProblems(form: HTMLFormElement, problems: FieldProblem[]): HTMLInputElement[] {
  const lines = new Map<HTMLInputElement, string[]>();
  for (const { field, description } of problems) {
    const input = inputFor(form, field);
    if (input === undefined) continue;
    const line = field === input.name ? description : `${field}: ${description}`;
    lines.set(input, [...(lines.get(input) ?? []), line]);
  }
  for (const [input, text] of lines) {
    const message = messageFor(input);
    message.textContent = text.join("\n");
    message.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", message.id);
  }
  return [...lines.keys()];
}

/** Removes every mark and message showProblems left. */
export function clearProblems(form: HTMLFormElement): void {
  for (const input of form.querySelectorAll<HTMLInputElement>("input[aria-invalid]")) {
    const message = messageFor(input);
    message.textContent = "";
    message.hidden = true;
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
}
