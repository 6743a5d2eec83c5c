// A small markdown renderer that cannot inject HTML: it never parses markup. Every piece of text becomes a
// DOM text node (createTextNode), elements are created by name from a fixed list, and the only attribute
// taken from the input is a link's href, kept only when it parses as an absolute http(s) URL.
// Subset: paragraphs (a single newline is a line break), # headings, **bold**, *italic* / _italic_, `code`,
// fenced code blocks (``` or ~~~, an unclosed fence runs to the end while a stream is still arriving),
// bulleted and numbered lists, > quotes, and [links](https://…).
"use strict";

const Markdown = (() => {
  const fence = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
  const heading = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const listItem = /^ {0,3}([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const quote = /^ {0,3}>\s?(.*)$/;
  const blank = /^\s*$/;
  const inlinePattern =
    /`([^`\n]+)`|\*\*(?=\S)([^\n]*?\S)\*\*|(?<!\w)__(?=\S)([^\n]*?\S)__(?!\w)|\*(?=[^\s*])([^*\n]*?[^\s*])\*|(?<!\w)_(?=[^\s_])([^_\n]*?[^\s_])_(?!\w)|\[([^\]\n]+)\]\(([^()\s]+)\)/g;

  function el(name, className) {
    const node = document.createElement(name);
    if (className) node.className = className;
    return node;
  }

  function safeHref(href) {
    try {
      const url = new URL(href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch {
      return null;
    }
  }

  /** Appends text with inline formatting to parent; lines are joined with <br>. */
  function inline(text, parent) {
    const lines = text.split("\n");
    lines.forEach((line, index) => {
      if (index > 0) parent.append(el("br"));
      inlineLine(line, parent);
    });
  }

  function inlineLine(text, parent) {
    let last = 0;
    // matchAll works on its own copy of the pattern, so the recursion for bold and italic cannot disturb it.
    for (const match of text.matchAll(inlinePattern)) {
      const [whole, code, bold, bold2, italic, italic2, linkText, linkHref] = match;
      let node;
      if (code !== undefined) {
        node = el("code");
        node.textContent = code;
      } else if (bold !== undefined || bold2 !== undefined) {
        node = el("strong");
        inlineLine(bold ?? bold2, node);
      } else if (italic !== undefined || italic2 !== undefined) {
        node = el("em");
        inlineLine(italic ?? italic2, node);
      } else {
        const href = safeHref(linkHref);
        if (href) {
          node = el("a");
          node.setAttribute("href", href);
          node.setAttribute("rel", "noopener noreferrer nofollow");
          node.setAttribute("target", "_blank");
          node.textContent = linkText;
        }
      }
      if (!node) continue; // e.g. a javascript: link stays literal text
      if (match.index > last) parent.append(document.createTextNode(text.slice(last, match.index)));
      parent.append(node);
      last = match.index + whole.length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  function startsBlock(line) {
    return fence.test(line) || heading.test(line) || listItem.test(line) || quote.test(line);
  }

  /** Renders markdown text into a DocumentFragment. */
  function render(text) {
    const out = document.createDocumentFragment();
    const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (blank.test(line)) {
        i++;
      } else if ((m = fence.exec(line))) {
        const marker = m[1];
        const body = [];
        for (i++; i < lines.length; i++) {
          const close = lines[i].trim();
          if (close[0] === marker[0] && close.length >= marker.length && /^(`+|~+)$/.test(close)) {
            i++;
            break;
          }
          body.push(lines[i]);
        }
        const pre = el("pre");
        const code = el("code");
        if (m[2]) code.className = "language-" + m[2].replace(/[^\w+#-]/g, "");
        code.textContent = body.join("\n");
        pre.append(code);
        out.append(pre);
      } else if ((m = heading.exec(line))) {
        const h = el("h" + m[1].length);
        inlineLine(m[2], h);
        out.append(h);
        i++;
      } else if (listItem.test(line)) {
        const ordered = /\d/.test(listItem.exec(line)[1]);
        const list = el(ordered ? "ol" : "ul");
        if (ordered) {
          const start = parseInt(listItem.exec(line)[1], 10);
          if (start !== 1) list.setAttribute("start", String(start));
        }
        while (i < lines.length && (m = listItem.exec(lines[i])) && /\d/.test(m[1]) === ordered) {
          const itemLines = [m[2]];
          // Indented lines that follow belong to the item.
          for (i++; i < lines.length && /^\s+\S/.test(lines[i]) && !listItem.test(lines[i]); i++) itemLines.push(lines[i].trim());
          const li = el("li");
          inline(itemLines.join("\n"), li);
          list.append(li);
        }
        out.append(list);
      } else if (quote.test(line)) {
        const quoted = [];
        for (; i < lines.length && (m = quote.exec(lines[i])); i++) quoted.push(m[1]);
        const block = el("blockquote");
        block.append(render(quoted.join("\n")));
        out.append(block);
      } else {
        const paragraph = [line];
        for (i++; i < lines.length && !blank.test(lines[i]) && !startsBlock(lines[i]); i++) paragraph.push(lines[i]);
        const p = el("p");
        inline(paragraph.join("\n"), p);
        out.append(p);
      }
    }
    return out;
  }

  return { render };
})();
