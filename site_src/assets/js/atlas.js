/* SSL ViT Atlas site behaviour, no dependencies:
 * - figures: plotly.js (the cartesian bundle beside this file) and the page's plot specs
 *   (<page>.figures.js) are loaded only on pages with plots, when a plot first nears the viewport;
 *   each plot is drawn when it scrolls near the viewport, one at a time,
 * - galleries: sliders/selectors swap image sources from the page's JSON manifest; the view is in
 *   the URL (?block=5&representation=keys&k=8#gallery) so it can be linked and cited,
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

  function initGallery(root) {
    var data = document.getElementById(root.getAttribute("data-manifest"));
    if (!data) {
      return;
    }
    var manifest = JSON.parse(data.textContent);
    var controls = Array.prototype.slice.call(root.querySelectorAll("[data-axis]"));
    controls.sort(function (a, b) {
      return Number(a.getAttribute("data-axis")) - Number(b.getAttribute("data-axis"));
    });
    var mode = root.querySelector("[data-mode]");
    var imgs = root.querySelectorAll("img[data-cell]");
    var missing = root.querySelector(".atlas-missing");

    // The view named by the URL: ?block=5&representation=keys&k=8 (older links: ?view=2-1-0).
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
    // older links name three axes; the picture axis added since defaults to the first (cluster maps)
    var legacyParts = legacy ? legacy.split("-").concat(["0", "0", "0", "0"]).slice(0, manifest.axes.length) : [];
    if (!named && legacy && manifest.views[legacyParts.join("|")]) {
      legacyParts.forEach(function (v, i) {
        if (controls[i]) {
          controls[i].value = v;
        }
      });
      named = true;
    }

    function describe() {
      return controls.map(function (c, i) {
        var ax = manifest.axes[i];
        var label = ax.labels[Number(c.value)];
        return ax.name === "k" ? "K = " + label : label;
      }).join(", ");
    }

    function viewKey() {
      return controls.map(function (c, i) {
        return manifest.axes[i].name + "-" + manifest.axes[i].values[Number(c.value)];
      }).join("-");
    }

    function update(fromUser) {
      var key = controls.map(function (c) { return c.value; }).join("|");
      var view = manifest.views[key];
      controls.forEach(function (c, i) {
        var out = c.parentNode.querySelector("output");
        if (out) {
          out.textContent = manifest.axes[i].labels[Number(c.value)];
        }
      });
      missing.hidden = Boolean(view);
      imgs.forEach(function (img, i) {
        var cell = view ? view[i] : null;
        var fig = img.closest("figure");
        fig.classList.toggle("atlas-cell--missing", !cell);
        if (!cell) {
          return;
        }
        // cell: [folder index, stem index, caption] (atlas.site.gallery.compact_manifest)
        var src = manifest.base + manifest.folders[cell[0]] + "/" + manifest.stems[cell[1]] +
          (mode.checked ? "-overlay.webp" : "-map.webp");
        if (img.getAttribute("src") !== src) {
          img.setAttribute("src", src);
        }
        if (cell[2]) {
          fig.querySelector("figcaption").textContent = cell[2];
        }
      });
      if (fromUser) {
        var url = new URL(window.location.href);
        url.searchParams.delete("view");
        controls.forEach(function (c, i) {
          var ax = manifest.axes[i];
          url.searchParams.set(ax.name, ax.values[Number(c.value)]);
        });
        url.hash = root.getAttribute("data-anchor") || "gallery";
        window.history.replaceState(null, "", url);
        named = true;
      }
      var anchor = root.getAttribute("data-anchor") || "gallery";
      if (named) {
        galleryView = { text: (anchor === "gallery" ? "" : anchor + ": ") + describe(), key: viewKey(), anchor: anchor };
      } else if (galleryView && galleryView.anchor === anchor) {
        galleryView = null;
      }
      updateViewCitation();
    }

    controls.forEach(function (c) {
      c.addEventListener("input", function () { update(true); });
      c.addEventListener("change", function () { update(true); });
    });
    mode.addEventListener("change", function () { update(false); });
    root.atlasNameView = function () { update(true); };
    update(false);
    if (named && !window.location.hash) {
      root.scrollIntoView({ block: "start" });
    }
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

  function init() {
    document.querySelectorAll(".atlas-gallery").forEach(initGallery);
    document.querySelectorAll(".atlas-sortable table").forEach(initSortable);
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
