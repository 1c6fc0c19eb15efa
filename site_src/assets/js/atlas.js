/* SSL ViT Atlas site behaviour, no dependencies:
 * - figures: plotly.js (the cartesian bundle beside this file) and the page's plot specs
 *   (<page>.figures.js) are loaded only on pages with plots, when a plot first nears the viewport;
 *   each plot is drawn when it scrolls near the viewport, one at a time,
 * - galleries: sliders/selectors choose a view of the page's JSON manifest; its cells are drawn on
 *   canvases from the view's one sprite file, paged, filtered by image group and sorted by a
 *   per-image number; clicking a patch highlights its cluster in every image; the whole state is in
 *   the URL (?block=5&representation=keys&k=8&overlay=1&page=2#gallery) so it can be linked and cited,
 * - "Cite this view": BibTeX of the view the URL names (gallery state, figure anchor),
 * - PNG/SVG export buttons, and Plotly colours that follow the light/dark toggle,
 * - sortable tables (.atlas-sortable): click a header; cells' data-value sort numerically.
 */
(function () {
  "use strict";

  var PLOTLY_SRC = new URL("vendor/plotly-cartesian.min.js", document.currentScript.src).href;
  var plotlyPromise = null;

  function isDark() {
    return document.body.getAttribute("data-md-color-scheme") === "slate";
  }

  function themeLayout(gd) {
    var dark = isDark();
    var fg = dark ? "#d5d8e2" : "#262b36";
    var update = { "font.color": fg, "title.font.color": fg, "legend.font.color": fg };
    Object.keys(gd.layout || {}).forEach(function (k) {
      if (/^[xy]axis\d*$/.test(k)) {
        update[k + ".color"] = fg;
      }
    });
    (gd.layout.updatemenus || []).forEach(function (_, i) {
      update["updatemenus[" + i + "].bgcolor"] = dark ? "#2e303e" : "#ffffff";
      update["updatemenus[" + i + "].bordercolor"] = dark ? "#5a5f73" : "#c4c7d0";
      update["updatemenus[" + i + "].font.color"] = fg;
    });
    return update;
  }

  // ------------------------------------------------------------------ plots

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = src;
      s.async = true;
      s.onload = function () { resolve(); };
      s.onerror = function () { reject(new Error("could not load " + src)); };
      document.head.appendChild(s);
    });
  }

  function loadPlotly() {
    if (!plotlyPromise) {
      plotlyPromise = typeof Plotly !== "undefined" ? Promise.resolve() : loadScript(PLOTLY_SRC);
    }
    return plotlyPromise;
  }

  // The plot specs of a page live in <page>.figures.js (atlasFigures({div id: spec})), loaded
  // once, when the first plot nears the viewport.
  var figures = {};
  var figureScripts = {};
  window.atlasFigures = function (specs) {
    Object.keys(specs).forEach(function (id) { figures[id] = specs[id]; });
  };

  function loadFigures(gd) {
    var src = new URL(gd.getAttribute("data-src"), document.baseURI).href;
    if (!figureScripts[src]) {
      figureScripts[src] = loadScript(src);
    }
    return figureScripts[src];
  }

  // One plot at a time, each in its own task, so the page never freezes while many plots draw.
  var queue = [];
  var drawing = false;

  function drawNext() {
    var gd = queue.shift();
    if (!gd) {
      drawing = false;
      return;
    }
    var fig = figures[gd.id];
    if (!fig) {
      console.error("no figure spec for " + gd.id);
      setTimeout(drawNext, 0);
      return;
    }
    Plotly.newPlot(gd, fig.data, fig.layout, fig.config).then(function () {
      return Plotly.relayout(gd, themeLayout(gd));
    }).then(function () {
      gd.classList.add("atlas-plot--drawn");
      setTimeout(drawNext, 0);
    });
  }

  function requestDraw(gd) {
    if (gd.getAttribute("data-queued")) {
      return;
    }
    gd.setAttribute("data-queued", "1");
    Promise.all([loadPlotly(), loadFigures(gd)]).then(function () {
      queue.push(gd);
      if (!drawing) {
        drawing = true;
        setTimeout(drawNext, 0);
      }
    }, function (err) {
      console.error(err.message);
    });
  }

  function lazyPlots() {
    var targets = document.querySelectorAll(".atlas-plot-target");
    if (!targets.length) {
      return;
    }
    if (!("IntersectionObserver" in window)) {
      targets.forEach(requestDraw);
      return;
    }
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) {
          io.unobserve(e.target);
          requestDraw(e.target);
        }
      });
    }, { rootMargin: "400px 0px" });
    targets.forEach(function (t) { io.observe(t); });
    // Printing draws every plot first.
    window.addEventListener("beforeprint", function () { targets.forEach(requestDraw); });
  }

  function recolourPlots() {
    if (typeof Plotly === "undefined") {
      return;
    }
    document.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
      Plotly.relayout(gd, themeLayout(gd));
    });
  }

  function exportButtons() {
    document.addEventListener("click", function (ev) {
      var btn = ev.target.closest(".atlas-export-btn");
      if (!btn) {
        return;
      }
      var fig = btn.closest("figure");
      var box = fig && fig.querySelector(".atlas-plot");
      var gd = fig && fig.querySelector(".js-plotly-plot");
      if (!gd) {
        return;
      }
      Plotly.downloadImage(gd, {
        format: btn.getAttribute("data-format"),
        filename: box.getAttribute("data-export-name"),
        scale: 2,
      });
    });
  }

  // ------------------------------------------------------------------ citing a view

  var LATEX = { "\\": "\\textbackslash{}", "{": "\\{", "}": "\\}", "&": "\\&", "%": "\\%", "$": "\\$",
    "#": "\\#", "_": "\\_", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}", "\u2014": "---",
    "\u2013": "--" };

  function latex(text) {
    return String(text).replace(/\s+/g, " ").trim().replace(/[\\{}&%$#_~^\u2014\u2013]/g, function (c) {
      return LATEX[c];
    });
  }

  function slug(text) {
    return String(text).toLowerCase().replace(/\+/g, " plus ").replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  }

  // What the URL names: the gallery view (query parameters) and / or a figure (fragment).
  var galleryView = null;

  function currentView() {
    var parts = [];
    var hash = decodeURIComponent(window.location.hash.slice(1));
    var fig = hash ? document.getElementById(hash) : null;
    if (galleryView && (!fig || hash === galleryView.anchor)) {
      parts.push({ what: "gallery, " + galleryView.text, key: galleryView.key });
    }
    if (fig && fig.classList.contains("atlas-figure")) {
      var title = fig.getAttribute("data-title") || hash;
      parts.push({ what: "figure: " + title, key: hash });
    }
    return parts;
  }

  function bibtexEntry(d, key, title, url) {
    var f = [["title", "{" + title + "}"], ["author", "{" + d.author + "}"], ["year", d.year],
      ["version", d.version]];
    if (d.doi) {
      f.push(["doi", d.doi]);
    }
    if (url) {
      f.push(["url", url], ["urldate", d.urldate],
        ["howpublished", "\\url{" + url.replace(/%/g, "\\%").replace(/#/g, "\\#") + "}"]);
    }
    f.push(["note", d.note]);
    return "@misc{" + key + ",\n" + f.map(function (x) {
      return "  " + (x[0] + "            ").slice(0, 12) + " = {" + x[1] + "}";
    }).join(",\n") + "\n}";
  }

  function updateViewCitation() {
    var data = document.getElementById("atlas-cite-data");
    var box = document.querySelector(".atlas-cite-view");
    if (!data || !box) {
      return;
    }
    var d = JSON.parse(data.textContent);
    var parts = currentView();
    box.hidden = parts.length === 0;
    if (!parts.length) {
      return;
    }
    var what = parts.map(function (p) { return p.what; }).join("; ");
    var key = d.key + "-" + parts.map(function (p) { return slug(p.key); }).join("-");
    var here = window.location.search + window.location.hash;
    var url = d.url ? d.url + here : "";
    var link = box.querySelector(".atlas-cite-view-link");
    link.setAttribute("href", d.url ? url : here);
    box.querySelector(".atlas-cite-view-url").textContent = d.url ? url : here + " (relative: site URL not set)";
    box.querySelector(".atlas-cite-view-what").textContent = what;
    box.querySelector(".atlas-cite-view-bibtex").textContent = bibtexEntry(d, key, d.title + ", " + latex(what), url);
    var embed = box.querySelector(".atlas-cite-view-embed");
    if (embed) {
      var src = new URL(d.url ? url : window.location.href, window.location.href);
      src.searchParams.set("embed", "1");
      embed.textContent = '<iframe src="' + src.href.replace(/"/g, "%22") + '" width="100%" height="560" ' +
        'style="border:0" loading="lazy" title="' + what.replace(/[<>&"]/g, "") + '"></iframe>';
    }
  }

  function citeLinks() {
    document.addEventListener("click", function (ev) {
      var a = ev.target.closest("a.atlas-cite-link");
      if (!a) {
        return;
      }
      ev.preventDefault();
      var gallery = a.closest(".atlas-gallery");
      if (gallery && gallery.atlasNameView) {
        gallery.atlasNameView();  // puts the gallery's current view into the URL
      } else {
        var url = new URL(window.location.href);
        url.hash = a.getAttribute("href").slice(1);
        window.history.replaceState(null, "", url);
      }
      updateViewCitation();
      var box = document.getElementById("cite-this-page");
      if (box) {
        box.scrollIntoView({ block: "start" });
      }
    });
    window.addEventListener("hashchange", updateViewCitation);
  }

  // ------------------------------------------------------------------ galleries
  // The manifest (atlas/site/gallery.py) names view files (atlas/site/maps.py): PNG sprite sheets
  // holding every image's map of one view at patch resolution, SPRITE_COLUMNS maps a row. A cell
  // copies its map onto a canvas of one pixel per patch; CSS scales it up with nearest-neighbour
  // sampling, over the shared photo.

  var SPRITE_COLUMNS = 16;
  var sprites = {};  // src -> Promise of the decoded <img> (shared by every gallery of the page)

  // The decoded view file, or null when it is missing or damaged. Over HTTP its bytes are checked
  // against the manifest's size and SHA-256 first (a truncated PNG still decodes, partly); from
  // file://, where fetch is refused, the browser's own decoder is the only check.
  function loadSprite(sp) {
    if (!sprites[sp.src]) {
      var get = window.location.protocol === "file:" ? Promise.reject(new Error("file://")) : fetch(sp.src);
      sprites[sp.src] = get.then(function (resp) {
        if (!resp.ok) {
          return null;
        }
        return resp.arrayBuffer().then(function (buf) {
          if (sp.bytes && buf.byteLength !== sp.bytes) {
            return null;
          }
          var check = sp.sha256 && window.crypto && window.crypto.subtle ?
            window.crypto.subtle.digest("SHA-256", buf).then(function (d) {
              return Array.prototype.map.call(new Uint8Array(d), function (b) {
                return ("0" + b.toString(16)).slice(-2);
              }).join("") === sp.sha256;
            }) : Promise.resolve(true);
          return check.then(function (ok) {
            return ok ? createImageBitmap(new Blob([buf], { type: "image/png" })).catch(function () { return null; }) : null;
          });
        });
      }, function () {
        return new Promise(function (resolve) {  // file:// pages
          var im = new Image();
          im.onload = function () { resolve(im); };
          im.onerror = function () { resolve(null); };  // shown as "damaged" in place
          im.src = sp.src;
        });
      });
    }
    return sprites[sp.src];
  }

  function spriteCell(sp, index) {
    var cols = Math.max(1, Math.min(sp.n, SPRITE_COLUMNS));
    return { x: (index % cols) * sp.w, y: Math.floor(index / cols) * sp.h };
  }

  function spriteIntact(sp, im) {
    var cols = Math.max(1, Math.min(sp.n, SPRITE_COLUMNS));
    var width = im && (im.naturalWidth || im.width);
    var height = im && (im.naturalHeight || im.height);
    return Boolean(im) && width === cols * sp.w && height === Math.ceil(sp.n / cols) * sp.h;
  }

  // Cluster ids of a labels sprite, read back through the palette; null where the browser forbids
  // reading pixels (pages opened from file://).
  var labelCache = {};

  function spriteLabels(sp, im, palette) {
    if (sp.src in labelCache) {
      return labelCache[sp.src];
    }
    var out = null;
    try {
      var c = document.createElement("canvas");
      c.width = im.naturalWidth || im.width;
      c.height = im.naturalHeight || im.height;
      var ctx = c.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(im, 0, 0);
      var px = ctx.getImageData(0, 0, c.width, c.height).data;
      var ids = {};
      palette.forEach(function (hex, i) { ids[parseInt(hex.slice(1), 16)] = i; });
      out = new Uint8Array(c.width * c.height);
      for (var i = 0; i < out.length; i++) {
        var id = ids[(px[4 * i] << 16) | (px[4 * i + 1] << 8) | px[4 * i + 2]];
        out[i] = id === undefined ? 255 : id;
      }
      out = { ids: out, width: c.width };
    } catch (err) {
      out = null;  // a tainted canvas (file://): drawing still works, reading does not
    }
    labelCache[sp.src] = out;
    return out;
  }

  function labelAt(lab, sp, index, px, py) {
    var at = spriteCell(sp, index);
    return lab.ids[(at.y + py) * lab.width + at.x + px];
  }

  function coverage(lab, sp, index, cluster) {
    var hits = 0;
    for (var y = 0; y < sp.h; y++) {
      for (var x = 0; x < sp.w; x++) {
        hits += labelAt(lab, sp, index, x, y) === cluster ? 1 : 0;
      }
    }
    return hits / (sp.h * sp.w);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) {
      e.className = cls;
    }
    if (text !== undefined) {
      e.textContent = text;
    }
    return e;
  }

  function permille(v) {
    return (v / 10).toFixed(1) + "%";
  }

  function initGallery(root) {
    var data = document.getElementById(root.getAttribute("data-manifest"));
    if (!data) {
      return;
    }
    var manifest = JSON.parse(data.textContent);
    var anchor = root.getAttribute("data-anchor") || "gallery";
    var prefix = anchor === "gallery" ? "" : anchor + "_";
    var controls = Array.prototype.slice.call(root.querySelectorAll("[data-axis]"));
    controls.sort(function (a, b) {
      return Number(a.getAttribute("data-axis")) - Number(b.getAttribute("data-axis"));
    });
    var mode = root.querySelector("[data-mode]");
    var groupSel = root.querySelector("[data-group]");
    var sortSel = root.querySelector("[data-sort]");
    var pager = root.querySelector("[data-pager]");
    var grid = root.querySelector("[data-grid]");
    var legend = root.querySelector("[data-legend]");
    var missing = root.querySelector(".atlas-missing");
    var notice = root.querySelector(".atlas-gallery-notice");
    var columns = manifest.columns || [];
    var table = columns.length > 0;
    var state = { page: 1, group: "", sort: "order", cluster: -1 };
    var drawn = 0;  // bumps on every redraw: late sprite loads of an older view draw nothing

    manifest.sorts.forEach(function (s) {
      var o = el("option", "", s[1]);
      o.value = s[0];
      o.title = s[2] || "";
      sortSel.appendChild(o);
    });

    // The view named by the URL: ?block=5&representation=keys&k=8&picture=clusters&overlay=1&page=2
    // &sort=border&group=0&cluster=3#gallery (older links: ?view=2-1-0).
    var params = new URLSearchParams(window.location.search);
    var named = false;
    manifest.axes.forEach(function (ax, i) {
      var v = params.get(ax.name);
      var idx = v === null ? -1 : (ax.values || []).indexOf(v);
      if (idx >= 0 && controls[i]) {
        controls[i].value = String(idx);
        named = true;
      }
    });
    var legacy = params.get("view");
    var legacyParts = legacy ? legacy.split("-").concat(["0", "0", "0", "0"]).slice(0, manifest.axes.length) : [];
    if (!named && legacy && manifest.views[legacyParts.join("|")]) {
      legacyParts.forEach(function (v, i) {
        if (controls[i]) {
          controls[i].value = v;
        }
      });
      named = true;
    }
    if (params.get(prefix + "overlay") !== null) {
      mode.checked = params.get(prefix + "overlay") !== "0";
      named = true;
    }
    if (params.get(prefix + "page") !== null) {
      state.page = Math.max(1, parseInt(params.get(prefix + "page"), 10) || 1);
    }
    var g = params.get(prefix + "group");
    if (g !== null && groupSel && manifest.groups.indexOf(g) >= 0) {
      state.group = g;
      groupSel.value = g;
    }
    var s = params.get(prefix + "sort");
    if (s !== null && manifest.sorts.some(function (x) { return x[0] === s; })) {
      state.sort = s;
    }
    sortSel.value = state.sort;
    if (params.get(prefix + "cluster") !== null) {
      state.cluster = parseInt(params.get(prefix + "cluster"), 10);
      if (isNaN(state.cluster)) {
        state.cluster = -1;
      }
    }

    function viewKeyOf() {
      return controls.map(function (c) { return c.value; }).join("|");
    }

    function describe() {
      return controls.map(function (c, i) {
        var ax = manifest.axes[i];
        var label = ax.labels[Number(c.value)];
        return ax.name === "k" ? "K = " + label : label;
      }).join(", ");
    }

    function citeKey() {
      return controls.map(function (c, i) {
        return manifest.axes[i].name + "-" + manifest.axes[i].values[Number(c.value)];
      }).join("-");
    }

    function firstSprite(view) {
      var cell = view && view.cells.filter(function (c) { return c; })[0];
      return cell ? manifest.sprites[cell[0]] : null;
    }

    // Rows of the view after the group filter, in the chosen order.
    function rows(view, labels) {
      var list = manifest.images.filter(function (r) {
        return state.group === "" || manifest.groups[r[2]] === state.group;
      });
      var sp = firstSprite(view);
      var first = view.cells.filter(function (c) { return c; })[0];
      var at = function (r) { return r[0] * first[1] + first[2]; };  // the row's map in the first column's file
      var key = state.sort;
      var numbers = sp && sp.numbers && sp.numbers[key];
      if (key === "name") {
        list.sort(function (a, b) { return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : a[0] - b[0]; });
      } else if (key === "cluster" && labels && state.cluster >= 0) {
        var cov = {};
        list.forEach(function (r) { cov[r[0]] = at(r) < sp.n ? coverage(labels, sp, at(r), state.cluster) : -1; });
        list.sort(function (a, b) { return cov[b[0]] - cov[a[0]] || a[0] - b[0]; });
      } else if (numbers) {
        var value = function (r) { return at(r) < numbers.length ? numbers[at(r)] : -1; };
        list.sort(function (a, b) { return value(b) - value(a) || a[0] - b[0]; });
      }
      return list;
    }

    function rowsPerPage() {
      return table ? Math.max(4, Math.floor(manifest.pageSize / columns.length)) : manifest.pageSize;
    }

    function cellLabel(view, j, name) {
      var what = table ? columns[j] + ", " : "";
      return name + ": " + what + describe();
    }

    function drawCell(canvas, sp, index, im, labels) {
      var ctx = canvas.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.clearRect(0, 0, sp.w, sp.h);
      var at = spriteCell(sp, index);
      if (sp.kind === "labels" && state.cluster >= 0 && labels) {
        var img = ctx.createImageData(sp.w, sp.h);
        var pal = manifest.palette;
        for (var y = 0; y < sp.h; y++) {
          for (var x = 0; x < sp.w; x++) {
            var id = labelAt(labels, sp, index, x, y);
            var rgb = parseInt((pal[id] || "#000000").slice(1), 16);
            var o = 4 * (y * sp.w + x);
            img.data[o] = rgb >> 16;
            img.data[o + 1] = (rgb >> 8) & 255;
            img.data[o + 2] = rgb & 255;
            img.data[o + 3] = id === state.cluster ? 255 : 28;  // the selected cluster stands out
          }
        }
        ctx.putImageData(img, 0, 0);
      } else {
        ctx.drawImage(im, at.x, at.y, sp.w, sp.h, 0, 0, sp.w, sp.h);
      }
    }

    function renderLegend(view, labels, reading) {
      legend.textContent = "";
      if (!view) {
        return;
      }
      var shown = {};
      view.cells.forEach(function (cell, j) {
        if (!cell || shown[cell[0]]) {
          return;
        }
        shown[cell[0]] = true;
        var sp = manifest.sprites[cell[0]];
        var box = el("div", "atlas-legend-block");
        if (table && sp.kind === "labels") {
          box.appendChild(el("p", "atlas-legend-title", columns[j]));
        }
        if (sp.kind === "labels" && sp.legend) {
          if (!shown.ring) {
            shown.ring = true;
            legend.appendChild(el("p", "atlas-note", "Shares on the border are of the outer row and column of " +
              "patches; a cluster spread evenly has the ring's share of the grid there. Click a patch or a " +
              "cluster to highlight it."));
          }
          if (sp.h > 2 && sp.w > 2) {  // the reference of this map's border shares
            box.appendChild(el("p", "atlas-note", "Border ring: " +
              (100 * (2 * sp.w + 2 * sp.h - 4) / (sp.w * sp.h)).toFixed(1) + "% of the " + sp.h + " × " + sp.w +
              " grid."));
          }
          var list = el("ul", "atlas-legend-list");
          sp.legend.forEach(function (entry, c) {
            if (!entry[0]) {
              return;
            }
            var li = el("li");
            var btn = el("button", "atlas-legend-item" + (c === state.cluster ? " is-selected" : ""));
            btn.type = "button";
            btn.setAttribute("aria-pressed", c === state.cluster ? "true" : "false");
            var sw = el("span", "atlas-swatch");
            sw.style.background = manifest.palette[c];
            btn.appendChild(sw);
            btn.appendChild(el("span", "", "cluster " + c + ": " + permille(entry[0]) + " of tokens, " +
              permille(entry[1]) + " on the border"));
            btn.addEventListener("click", function () { select(c === state.cluster ? -1 : c); });
            li.appendChild(btn);
            list.appendChild(li);
          });
          box.appendChild(list);
          if (state.cluster >= 0 && sp.legend[state.cluster]) {
            var e = sp.legend[state.cluster];
            var panel = el("div", "atlas-cluster-panel");
            panel.appendChild(el("p", "", "Cluster " + state.cluster + ": " + permille(e[0]) + " of all tokens of the view; " +
              permille(e[1]) + " of its tokens lie on the border ring. Covers most of: "));
            var top = el("ol", "atlas-cluster-top");
            e[2].forEach(function (i) {
              var r = manifest.images.filter(function (x) { return x[0] === i; })[0];
              if (r) {
                var pct = labels ? " (" + (100 * coverage(labels, sp, i, state.cluster)).toFixed(0) + "%)" : "";
                top.appendChild(el("li", "", r[1] + pct));
              }
            });
            panel.appendChild(top);
            if (!reading) {
              panel.appendChild(el("p", "atlas-note", "Highlighting needs the site served over HTTP (any static " +
                "host, or python -m http.server); this copy was opened from a file."));
            }
            box.appendChild(panel);
          }
        } else if (sp.kind === "attention") {
          var bar = el("div", "atlas-colourbar");
          bar.style.background = "linear-gradient(to right, " + manifest.lut.join(", ") + ")";
          bar.setAttribute("role", "img");
          bar.setAttribute("aria-label", "colour scale: black = no attention, yellow = the map's most attended patch");
          box.appendChild(bar);
          box.appendChild(el("p", "atlas-colourbar-labels", "0 · no attention → 1 · the map's most attended patch"));
        } else if (sp.kind === "rgb") {
          box.appendChild(el("p", "atlas-note", "Colours: the first three principal components (red, green, blue) " +
            "of one PCA over all images' patches."));
        }
        if (box.childNodes.length) {
          legend.appendChild(box);
        }
      });
    }

    function select(cluster) {
      state.cluster = cluster;
      if (cluster >= 0 && state.sort !== "cluster" && sortSel.querySelector("option[value=cluster]:not([disabled])")) {
        state.sort = "cluster";
        sortSel.value = "cluster";
        state.page = 1;
      }
      update(true);
    }

    function writeUrl() {
      var url = new URL(window.location.href);
      url.searchParams.delete("view");
      controls.forEach(function (c, i) {
        var ax = manifest.axes[i];
        url.searchParams.set(ax.name, ax.values[Number(c.value)]);
      });
      url.searchParams.set(prefix + "overlay", mode.checked ? "1" : "0");
      [["page", state.page > 1 ? String(state.page) : null], ["sort", state.sort !== "order" ? state.sort : null],
        ["group", state.group !== "" ? state.group : null],
        ["cluster", state.cluster >= 0 ? String(state.cluster) : null]].forEach(function (kv) {
        if (kv[1] === null) {
          url.searchParams.delete(prefix + kv[0]);
        } else {
          url.searchParams.set(prefix + kv[0], kv[1]);
        }
      });
      url.hash = anchor;
      window.history.replaceState(null, "", url);
    }

    function update(fromUser) {
      var key = viewKeyOf();
      var view = manifest.views[key];
      var token = ++drawn;
      controls.forEach(function (c, i) {
        var out = c.parentNode.querySelector("output");
        if (out) {
          out.textContent = manifest.axes[i].labels[Number(c.value)];
        }
      });
      missing.hidden = Boolean(view);
      root.classList.toggle("atlas-gallery--bare", !mode.checked);
      root.classList.toggle("atlas-gallery--selecting", state.cluster >= 0);
      var sp0 = firstSprite(view);
      if (sp0 && sp0.kind === "labels" && state.cluster >= (sp0.legend || []).length) {
        state.cluster = -1;  // a cluster id of another K
      }
      var loads = view ? view.cells.map(function (c) {
        return c ? loadSprite(manifest.sprites[c[0]]) : Promise.resolve(null);
      }) : [];
      Promise.all(loads).then(function (ims) {
        if (token !== drawn) {
          return;
        }
        var labels = null;
        var reading = true;
        if (sp0 && sp0.kind === "labels" && ims[0] && spriteIntact(sp0, ims[0])) {
          labels = spriteLabels(sp0, ims[0], manifest.palette);
          reading = labels !== null;
        }
        var clusterSort = sortSel.querySelector("option[value=cluster]");
        clusterSort.disabled = !labels;
        Array.prototype.forEach.call(sortSel.options, function (o) {
          if (["order", "name", "cluster"].indexOf(o.value) < 0) {
            o.disabled = !(sp0 && sp0.numbers && sp0.numbers[o.value]);
          }
        });
        if (sortSel.selectedOptions[0] && sortSel.selectedOptions[0].disabled && state.sort !== "order") {
          state.sort = "order";
          sortSel.value = "order";
        }
        var damaged = view ? view.cells.some(function (c, j) {
          return c && !spriteIntact(manifest.sprites[c[0]], ims[j]);
        }) : false;
        notice.hidden = !damaged;
        notice.textContent = damaged ? "A file of this view is missing or damaged: rebuild the atlas to draw it again." : "";
        var list = view ? rows(view, labels) : [];
        var per = rowsPerPage();
        var pages = Math.max(1, Math.ceil(list.length / per));
        state.page = Math.min(state.page, pages);
        var shown = list.slice((state.page - 1) * per, state.page * per);
        pager.querySelector("output").textContent = list.length ?
          "images " + ((state.page - 1) * per + 1) + "–" + ((state.page - 1) * per + shown.length) + " of " + list.length +
          (pages > 1 ? " · page " + state.page + " of " + pages : "") : "no image in this group";
        pager.querySelector("[data-step='-1']").disabled = state.page <= 1;
        pager.querySelector("[data-step='1']").disabled = state.page >= pages;
        grid.textContent = "";
        shown.forEach(function (r) {
          var holder = grid;
          if (table) {
            holder = el("div", "atlas-row");
            holder.appendChild(el("p", "atlas-rowhead", r[1]));
            var cells = el("div", "atlas-row-cells");
            holder.appendChild(cells);
            grid.appendChild(holder);
            holder = cells;
          }
          view.cells.forEach(function (cell, j) {
            var fig = el("figure", "atlas-cell");
            var box = el("div", "atlas-cell-box");
            var sp = cell ? manifest.sprites[cell[0]] : sp0;
            if (sp) {
              box.style.aspectRatio = sp.w + " / " + sp.h;
            }
            var photoUrl = sp && r[3][sp.a];
            if (photoUrl) {
              var ph = el("img", "atlas-cell-photo");
              ph.src = photoUrl;
              ph.alt = "";
              ph.loading = "lazy";
              ph.decoding = "async";
              box.appendChild(ph);
            }
            var index = cell ? r[0] * cell[1] + cell[2] : -1;
            var msg = null;
            if (!cell || index >= sp.n) {
              msg = "not computed for this image";
            } else if (!spriteIntact(sp, ims[j])) {
              msg = "damaged: this view's file could not be read";
            }
            if (msg) {
              fig.classList.add("atlas-cell--missing");
              box.appendChild(el("p", "atlas-cell-msg", msg));
            } else {
              var canvas = el("canvas");
              canvas.width = sp.w;
              canvas.height = sp.h;
              canvas.setAttribute("role", "img");
              canvas.setAttribute("aria-label", cellLabel(view, j, r[1]));
              canvas.setAttribute("data-map", sp.src + "#" + index);  // which map of which file
              drawCell(canvas, sp, index, ims[j], j === 0 ? labels : null);
              if (sp.kind === "labels" && labels && j === 0) {
                canvas.addEventListener("click", function (ev) {
                  var rect = canvas.getBoundingClientRect();
                  var px = Math.min(sp.w - 1, Math.floor((ev.clientX - rect.left) / rect.width * sp.w));
                  var py = Math.min(sp.h - 1, Math.floor((ev.clientY - rect.top) / rect.height * sp.h));
                  var c = labelAt(labels, sp, index, px, py);
                  select(c === state.cluster ? -1 : c);
                });
                canvas.title = "Click a patch to highlight its cluster in every image";
              }
              box.appendChild(canvas);
            }
            fig.appendChild(box);
            var cap = table ? (columns[j] + (view.caps && view.caps[j] ? " · " + view.caps[j] : "")) : r[1];
            fig.appendChild(el("figcaption", "", cap));
            holder.appendChild(fig);
          });
        });
        renderLegend(view, labels, reading);
        root.setAttribute("data-drawn", String(token));
      });
      if (fromUser) {
        writeUrl();
        named = true;
      }
      if (named) {
        galleryView = { text: (anchor === "gallery" ? "" : anchor + ": ") + describe(), key: citeKey(), anchor: anchor };
      } else if (galleryView && galleryView.anchor === anchor) {
        galleryView = null;
      }
      updateViewCitation();
    }

    controls.forEach(function (c) {
      c.addEventListener("input", function () { update(true); });
      c.addEventListener("change", function () { update(true); });
    });
    mode.addEventListener("change", function () { update(true); });
    if (groupSel) {
      groupSel.addEventListener("change", function () { state.group = groupSel.value; state.page = 1; update(true); });
    }
    sortSel.addEventListener("change", function () { state.sort = sortSel.value; state.page = 1; update(true); });
    pager.querySelectorAll("[data-step]").forEach(function (b) {
      b.addEventListener("click", function () {
        state.page = Math.max(1, state.page + Number(b.getAttribute("data-step")));
        update(true);
      });
    });
    root.atlasNameView = function () { update(true); };
    update(false);
    if (named && !window.location.hash) {
      root.scrollIntoView({ block: "start" });
    }
  }

  // ------------------------------------------------------------------ Home overview
  // Rows: models (atlas/site/overview.py); each model's view file holds, per representation,
  // depth and offered image, one cluster map; the chosen image and representation are in the URL.

  function initOverview(root) {
    var data = document.getElementById(root.getAttribute("data-manifest"));
    if (!data) {
      return;
    }
    var manifest = JSON.parse(data.textContent);
    var imageSel = root.querySelector("[data-overview-image]");
    var repSel = root.querySelector("[data-overview-rep]");
    var mode = root.querySelector("[data-mode]");
    var params = new URLSearchParams(window.location.search);
    var named = params.get("overview_image");
    manifest.images.forEach(function (im, i) {
      if (im[0] === named) {
        imageSel.value = String(i);
      }
    });
    var rep = manifest.reps.indexOf(params.get("overview_rep"));
    if (rep >= 0) {
      repSel.value = String(rep);
    }
    if (params.get("overview_overlay") === "0") {
      mode.checked = false;
    }

    function update(fromUser) {
      var image = Number(imageSel.value);
      var repName = manifest.reps[Number(repSel.value)];
      root.classList.toggle("atlas-gallery--bare", !mode.checked);
      root.querySelectorAll("a[data-row]").forEach(function (a) {
        var row = manifest.rows[Number(a.getAttribute("data-row"))];
        var depth = Number(a.getAttribute("data-depth"));
        var reps = row.reps;
        var cell = row.cells[repName] ? row.cells[repName][depth] : null;
        var box = a.querySelector(".atlas-overview__box");
        var canvas = box.querySelector("canvas");
        var photo = box.querySelector("img");
        var caption = a.querySelector(".atlas-overview__caption");
        var sp = row.sprite;
        var url = sp && manifest.images[image][1][sp.a];
        if (url && !photo) {
          photo = el("img");
          photo.alt = "";
          photo.decoding = "async";
          box.insertBefore(photo, canvas);
        }
        if (photo && url && photo.getAttribute("src") !== url) {
          photo.setAttribute("src", url);
        }
        if (!cell || !sp) {
          canvas.hidden = true;
          caption.textContent = row.cells[repName] ? "—" : "no " + repName;
          a.setAttribute("href", row.href);
          a.setAttribute("title", row.label + ": no gallery block of " + repName + " near this depth");
          return;
        }
        canvas.hidden = false;
        var index = (reps.indexOf(repName) * manifest.depths + depth) * manifest.images.length + image;
        var href = row.href + "?block=" + cell[0] + "&representation=" + encodeURIComponent(repName) + "&k=" + cell[1] +
          "#gallery";
        a.setAttribute("href", href);
        var label = row.label + ": cluster map of " + manifest.images[image][0] + " at block " + cell[0] + " (" +
          repName + ", K = " + cell[1] + ")";
        a.setAttribute("title", label);
        canvas.setAttribute("aria-label", label);
        caption.textContent = "block " + cell[0];
        loadSprite(sp).then(function (im) {
          if (!spriteIntact(sp, im)) {
            canvas.hidden = true;
            caption.textContent = "damaged file";
            return;
          }
          canvas.width = sp.w;
          canvas.height = sp.h;
          var at = spriteCell(sp, index);
          var ctx = canvas.getContext("2d");
          ctx.imageSmoothingEnabled = false;
          ctx.drawImage(im, at.x, at.y, sp.w, sp.h, 0, 0, sp.w, sp.h);
          canvas.setAttribute("data-map", sp.src + "#" + index);
        });
      });
      if (fromUser) {
        var u = new URL(window.location.href);
        u.searchParams.set("overview_image", manifest.images[image][0]);
        u.searchParams.set("overview_rep", repName);
        u.searchParams.set("overview_overlay", mode.checked ? "1" : "0");
        u.hash = "overview";
        window.history.replaceState(null, "", u);
      }
    }

    [imageSel, repSel, mode].forEach(function (c) {
      c.addEventListener("change", function () { update(true); });
    });
    update(false);
  }

  // ------------------------------------------------------------------ sortable tables

  function initSortable(table) {
    var body = table.tBodies[0];
    if (!body) {
      return;
    }
    var heads = Array.prototype.slice.call(table.querySelectorAll("thead th"));
    Array.prototype.forEach.call(body.rows, function (row, i) {
      row.setAttribute("data-index", String(i));
    });

    // Numbers (data-value) compare as numbers, other cells as text; cells without a value
    // ("—") always go last; ties keep the page's order.
    function key(row, col) {
      var cell = row.cells[col];
      if (!cell) {
        return null;
      }
      var raw = cell.getAttribute("data-value");
      if (raw !== null && raw !== "" && !isNaN(Number(raw))) {
        return Number(raw);
      }
      var text = cell.textContent.trim();
      return text === "" || text === "\u2014" ? null : text.toLowerCase();
    }

    function sortBy(col) {
      var th = heads[col];
      var now = th.getAttribute("aria-sort");
      var dir = now === "ascending" ? "descending" : now === "descending" ? "ascending"
        : (th.getAttribute("data-sort-first") || "ascending");
      var sign = dir === "ascending" ? 1 : -1;
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var ka = key(a, col);
        var kb = key(b, col);
        if (ka === null || kb === null) {
          if (ka === kb) {
            return Number(a.getAttribute("data-index")) - Number(b.getAttribute("data-index"));
          }
          return ka === null ? 1 : -1;
        }
        var c = typeof ka === "number" && typeof kb === "number" ? ka - kb : String(ka).localeCompare(String(kb));
        return c !== 0 ? sign * c : Number(a.getAttribute("data-index")) - Number(b.getAttribute("data-index"));
      });
      rows.forEach(function (r) { body.appendChild(r); });
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir);
    }

    heads.forEach(function (th, col) {
      th.tabIndex = 0;
      th.title = "Sort by this column";
      th.addEventListener("click", function () { sortBy(col); });
      th.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          sortBy(col);
        }
      });
    });
  }

  // ?embed=1: the page shows one figure or one gallery view (the anchor names it; else the first
  // gallery), without navigation, with a line citing it; for <iframe>s on other sites
  function initEmbed() {
    if (new URLSearchParams(window.location.search).get("embed") !== "1") {
      return;
    }
    var hash = decodeURIComponent(window.location.hash.slice(1));
    var target = null;
    document.querySelectorAll(".atlas-gallery").forEach(function (g) {
      if (!target && hash && g.getAttribute("data-anchor") === hash) {
        target = g;
      }
    });
    var el = hash ? document.getElementById(hash) : null;
    if (!target && el && el.classList.contains("atlas-figure")) {
      target = el;
    }
    target = target || document.querySelector(".atlas-gallery") || document.querySelector(".atlas-figure");
    var inner = document.querySelector(".md-content__inner");
    if (!target || !inner) {
      return;
    }
    var data = document.getElementById("atlas-cite-data");
    var d = data ? JSON.parse(data.textContent) : {};
    var full = new URL(window.location.href);
    full.searchParams.delete("embed");
    var link = document.createElement("a");
    link.href = d.url ? d.url + full.search + full.hash : full.href;
    link.target = "_top";
    link.textContent = document.title;
    var line = document.createElement("p");
    line.className = "atlas-embed-cite";
    line.append("From ", link, d.version ? " (atlas " + d.version + ")" : "", ". Cite it from the full page.");
    var keep = document.createElement("div");
    keep.className = "atlas-embed-keep";
    inner.insertBefore(keep, inner.firstChild);
    keep.appendChild(target);
    keep.appendChild(line);
    document.documentElement.classList.add("atlas-embed");
    // the view is first now: show it from the top, weights banner included, not scrolled to the anchor
    window.addEventListener("load", function () { window.scrollTo(0, 0); });
  }

  function init() {
    initEmbed();
    document.querySelectorAll(".atlas-gallery").forEach(initGallery);
    document.querySelectorAll(".atlas-overview-block").forEach(initOverview);
    // data-static: a table of unlike rows (one measure each), which no column can order
    document.querySelectorAll(".atlas-sortable:not([data-static]) table").forEach(initSortable);
    lazyPlots();
    exportButtons();
    citeLinks();
    updateViewCitation();
    new MutationObserver(recolourPlots).observe(document.body, {
      attributes: true,
      attributeFilter: ["data-md-color-scheme"],
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
