// hikitsugi browser front end. Plain ES2020, no dependencies.
// All server-provided text is inserted with textContent / text nodes only.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  const ROLE_LABELS = { reader: "閲覧者", editor: "編集者", admin: "管理者" };
  const KIND_LABELS = {
    application: "申請書", manual: "手引き・事例集", plan: "計画", report: "報告書",
    review: "総括", minutes: "議事録", notice: "通知", guideline: "ガイドライン",
    faq: "FAQ", slides: "スライド", memo: "メモ", contract: "契約書", other: "その他",
  };
  const UPLOAD_KINDS = ["minutes", "report", "plan", "manual", "application", "review", "other"];
  const VIEWS = ["ask-view", "compare-view", "similar-view", "search-view", "documents-view"];
  const HISTORY_KEY = "hikitsugi.history";
  const HISTORY_MAX = 20;
  const EXPIRED_MSG = "セッションの有効期限が切れました。もう一度サインインしてください。";
  const NETWORK_MSG = "サーバーに接続できませんでした。ネットワークの状態を確認してください。";

  const state = {
    session: null,        // session body incl. csrf_token (memory only)
    documents: [],
    askController: null,
    askSeq: 0,
    lastQuestion: "",
    result: null,         // final AskResponse
    citationMap: new Map(),
    rating: null,
    viewerSeq: 0,
    viewer: null,         // { item, highlights, opener }
    pendingQuery: null,
    confirmResolve: null,
    comparison: null,     // last CompareResponse
    compareSeq: 0,
    facets: null,         // last FacetsResponse
  };

  // ---------- helpers ----------

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code || "";
    }
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function kindLabel(kind) {
    if (!kind) return "";
    return KIND_LABELS[kind] || kind;
  }

  function locationLabel(start, end) {
    if (start === null || start === undefined) return "";
    if (end === null || end === undefined || end === start) return "p." + start;
    return "pp." + start + "–" + end;
  }

  // Where a passage lies, marked when its text was read by OCR (it may hold misread characters).
  function locationOf(item) {
    const location = locationLabel(item.page_start, item.page_end);
    if (!item.ocr) return location;
    return (location ? location + " " : "") + "（OCR読み取り）";
  }

  function formatDate(date) {
    if (!date) return "";
    const m = /^(\d{4})-(\d{2})(?:-(\d{2}))?$/.exec(String(date));
    if (!m) return String(date);
    return m[1] + "年" + Number(m[2]) + "月" + (m[3] ? Number(m[3]) + "日" : "");
  }

  function headingLabel(path, sep) {
    if (!Array.isArray(path) || path.length === 0) return "";
    return path.join(sep);
  }

  function seconds(ms) {
    if (typeof ms !== "number" || !isFinite(ms)) return "";
    const s = ms / 1000;
    return (s < 10 ? s.toFixed(s < 0.1 && s > 0 ? 2 : 1) : Math.round(s).toString()) + "秒";
  }

  function excerpt(text, max) {
    const t = String(text || "").replace(/\s+/g, " ").trim();
    return t.length > max ? t.slice(0, max) + "…" : t;
  }

  function statusFallback(status) {
    if (status === 400) return "リクエストの内容に誤りがあります。";
    if (status === 403) return "この操作を行う権限がありません。";
    if (status === 404) return "見つかりませんでした。";
    if (status === 413) return "ファイルが大きすぎます。";
    if (status === 415) return "この形式のファイルには対応していません。";
    if (status === 429) return "リクエストが多すぎます。しばらくしてからもう一度お試しください。";
    if (status >= 500) return "サーバーでエラーが発生しました（HTTP " + status + "）。";
    return "エラーが発生しました（HTTP " + status + "）。";
  }

  function errorFromBody(body, status) {
    if (body && body.error && typeof body.error.message === "string" && body.error.message) {
      return new ApiError(body.error.message, status, body.error.code);
    }
    return new ApiError(statusFallback(status), status);
  }

  async function errorFromResponse(res) {
    let body = null;
    try { body = await res.json(); } catch (_) { body = null; }
    return errorFromBody(body, res.status);
  }

  // Wrap matched substrings in <mark>. `terms` are plain strings; overlapping ranges merge.
  function highlightInto(container, text, terms) {
    text = String(text || "");
    const ranges = [];
    const lower = text.toLowerCase();
    const caseFold = lower.length === text.length;
    for (const raw of terms || []) {
      if (typeof raw !== "string") continue;
      const term = raw.trim() ? raw : "";
      if (!term) continue;
      const hay = caseFold ? lower : text;
      const needle = caseFold ? term.toLowerCase() : term;
      if (caseFold && needle.length !== term.length) continue;
      let from = 0;
      for (;;) {
        const i = hay.indexOf(needle, from);
        if (i < 0) break;
        ranges.push([i, i + needle.length]);
        from = i + needle.length;
      }
    }
    ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    const merged = [];
    for (const r of ranges) {
      const last = merged[merged.length - 1];
      if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
      else merged.push([r[0], r[1]]);
    }
    let pos = 0;
    for (const [s, e] of merged) {
      if (s > pos) container.appendChild(document.createTextNode(text.slice(pos, s)));
      container.appendChild(el("mark", "", text.slice(s, e)));
      pos = e;
    }
    if (pos < text.length) container.appendChild(document.createTextNode(text.slice(pos)));
    return merged.length;
  }

  // ---------- API ----------

  function onUnauthorized() {
    const wasSignedIn = !!state.session;
    resetSession();
    showSignin(wasSignedIn ? EXPIRED_MSG : "");
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const opts = { method, credentials: "same-origin", headers };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = (state.session && state.session.csrf_token) || "";
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(NETWORK_MSG, 0);
    }
    if (res.status === 401) {
      onUnauthorized();
      throw new ApiError(EXPIRED_MSG, 401, "unauthorized");
    }
    if (!res.ok) throw await errorFromResponse(res);
    if (res.status === 204) return null;
    try {
      return await res.json();
    } catch (_) {
      throw new ApiError("サーバーの応答を読み取れませんでした。", res.status);
    }
  }

  // ---------- session / views ----------

  function resetSession() {
    state.session = null;
    state.documents = [];
    if (state.askController) state.askController.abort();
    state.askController = null;
    state.askSeq++;
    closeDialogs();
    resetAnswer();
    clear($("search-results"));
    $("search-meta").textContent = "";
    show($("search-error"), false);
    clear($("documents-table").tBodies[0]);
    clear($("upload-results"));
    state.comparison = null;
    state.compareSeq++;
    state.facets = null;
    clear($("compare-table").tBodies[0]);
    clearSynthesis();
    show($("compare-wrap"), false);
    show($("compare-tools"), false);
    $("compare-meta").textContent = "";
    clear($("similar-results"));
    $("similar-meta").textContent = "";
  }

  function closeDialogs() {
    const v = $("viewer");
    if (v.open) v.close();
    const c = $("confirm-dialog");
    if (c.open) c.close();
  }

  function showSignin(message) {
    show($("boot-status"), false);
    show($("app-view"), false);
    show($("signin-view"), true);
    document.querySelector(".skip-link").hidden = true;
    $("signin-error").textContent = message || "";
    $("api-key").value = "";
    $("signin-submit").disabled = false;
    $("api-key").focus();
  }

  function enterApp(session) {
    state.session = session;
    show($("boot-status"), false);
    show($("signin-view"), false);
    show($("app-view"), true);
    document.querySelector(".skip-link").hidden = false;
    $("session-org").textContent = session.org_name || session.org || "";
    $("session-role").textContent = ROLE_LABELS[session.role] || session.role || "";
    $("session-user").textContent = session.user || "";
    show($("upload-section"), canEdit());
    renderHistory();
    loadDocuments();

    const q = state.pendingQuery;
    state.pendingQuery = null;
    if (q) {
      switchView("ask-view", false);
      $("question").value = q;
      ask(q);
    } else {
      switchView("ask-view", false);
      $("question").focus();
    }
  }

  function canEdit() {
    return !!state.session && (state.session.role === "editor" || state.session.role === "admin");
  }

  function switchView(id, focus) {
    for (const btn of document.querySelectorAll(".main-nav button")) {
      const active = btn.dataset.view === id;
      if (active) btn.setAttribute("aria-current", "page");
      else btn.removeAttribute("aria-current");
    }
    for (const v of VIEWS) show($(v), v === id);
    if (id === "documents-view" || id === "compare-view") loadDocuments();
    if (id === "search-view") loadFacets();
    if (focus) {
      const targets = {
        "ask-view": "question", "compare-view": "compare-question", "similar-view": "similar-text",
        "search-view": "search-query", "documents-view": "documents-filter",
      };
      $(targets[id]).focus();
    }
  }

  async function boot() {
    const params = new URLSearchParams(location.search);
    const q = (params.get("q") || "").trim();
    if (q) state.pendingQuery = q;
    let res;
    try {
      res = await fetch("/auth/session", { method: "GET", credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch (_) {
      showSignin(NETWORK_MSG);
      return;
    }
    if (res.ok) {
      try {
        enterApp(await res.json());
        return;
      } catch (_) { /* fall through */ }
    }
    showSignin(res.status === 401 || res.ok ? "" : (await errorFromResponse(res)).message);
  }

  async function signIn(event) {
    event.preventDefault();
    const key = $("api-key").value.trim();
    const err = $("signin-error");
    if (!key) {
      err.textContent = "APIキーを入力してください。";
      $("api-key").focus();
      return;
    }
    err.textContent = "";
    $("signin-submit").disabled = true;
    try {
      let res;
      try {
        res = await fetch("/auth/session", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ key }),
        });
      } catch (_) {
        throw new ApiError(NETWORK_MSG, 0);
      }
      if (!res.ok) throw await errorFromResponse(res);
      const session = await res.json();
      $("api-key").value = "";
      if (!state.pendingQuery) {
        const q = (new URLSearchParams(location.search).get("q") || "").trim();
        if (q) state.pendingQuery = q;
      }
      enterApp(session);
    } catch (e) {
      err.textContent = e.message || "サインインできませんでした。";
      $("api-key").focus();
      $("api-key").select();
    } finally {
      $("signin-submit").disabled = false;
    }
  }

  async function signOut() {
    const btn = $("signout");
    btn.disabled = true;
    try {
      await fetch("/auth/logout", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": (state.session && state.session.csrf_token) || "" },
      });
    } catch (_) { /* sign out locally anyway */ }
    btn.disabled = false;
    resetSession();
    state.pendingQuery = null;
    try { history.replaceState(null, "", location.pathname); } catch (_) { /* ignore */ }
    showSignin("サインアウトしました。");
  }

  // ---------- ask ----------

  function setAnswerState(s) {
    $("answer").dataset.state = s;
    $("answer").setAttribute("aria-busy", s === "loading" || s === "streaming" ? "true" : "false");
  }

  function resetAnswer() {
    setAnswerState("idle");
    state.result = null;
    state.citationMap = new Map();
    state.rating = null;
    show($("answer-heading"), false);
    $("answer-status").textContent = "";
    show($("answer-error"), false);
    $("answer-error").textContent = "";
    clear($("answer-text"));
    show($("not-found"), false);
    $("not-found").textContent = "";
    $("answer-meta").textContent = "";
    clear($("answer-warnings"));
    clear($("citations"));
    clear($("related"));
    show($("citations-section"), false);
    show($("related-section"), false);
    show($("answer-tools"), false);
    show($("copy-fallback-wrap"), false);
    $("copy-status").textContent = "";
    resetFeedback();
  }

  function resetFeedback() {
    state.rating = null;
    for (const id of ["feedback-up", "feedback-down"]) {
      $(id).setAttribute("aria-pressed", "false");
      $(id).disabled = false;
    }
    $("feedback-comment").value = "";
    $("feedback-comment").disabled = false;
    $("feedback-submit").disabled = false;
    $("feedback-status").textContent = "";
  }

  function citeButton(n) {
    const b = el("button", "cite", "[" + n + "]");
    b.type = "button";
    b.dataset.n = String(n);
    b.setAttribute("aria-label", "出典" + n);
    return b;
  }

  // Append text with [n] markers turned into cite buttons. Returns the numbers found.
  function appendWithMarkers(container, text) {
    const found = [];
    const re = /\[(\d+)\]/g;
    let pos = 0;
    let m;
    text = String(text || "");
    while ((m = re.exec(text)) !== null) {
      if (m.index > pos) container.appendChild(document.createTextNode(text.slice(pos, m.index)));
      const n = Number(m[1]);
      container.appendChild(citeButton(n));
      found.push(n);
      pos = m.index + m[0].length;
    }
    if (pos < text.length) container.appendChild(document.createTextNode(text.slice(pos)));
    return found;
  }

  function appendSentence(data) {
    const span = el("span", "sentence");
    const inline = appendWithMarkers(span, data.text);
    if (inline.length === 0 && Array.isArray(data.citations)) {
      for (const n of data.citations) span.appendChild(citeButton(n));
    }
    $("answer-text").appendChild(span);
  }

  function citationItem(c) {
    const li = el("li", "cite-item");
    li.dataset.n = String(c.n);
    const b = el("button", "cite-open");
    b.type = "button";
    b.dataset.n = String(c.n);
    const head = el("span", "cite-head");
    head.appendChild(el("span", "cite-num", "[" + c.n + "]"));
    head.appendChild(el("span", "cite-title", c.title || c.doc_id || ""));
    b.appendChild(head);
    const meta = [c.owner_name || c.owner, kindLabel(c.kind), formatDate(c.date), locationOf(c)]
      .filter(Boolean).join("・");
    b.appendChild(el("span", "cite-meta", meta));
    const heading = headingLabel(c.heading_path, " ＞ ");
    if (heading) b.appendChild(el("span", "cite-heading", heading));
    const ex = el("span", "cite-excerpt");
    const first = Array.isArray(c.highlights) && c.highlights.find((h) => typeof h === "string" && h.trim());
    ex.textContent = excerpt(first || c.text, 120);
    b.appendChild(ex);
    if (c.ocr) {
      const badge = el("span", "badge", "OCR");
      badge.title = "文字認識によるテキスト";
      head.appendChild(badge);
    }
    li.appendChild(b);
    return li;
  }

  function renderFinal(res) {
    state.result = res;
    state.citationMap = new Map();
    for (const c of res.citations || []) state.citationMap.set(Number(c.n), c);
    $("answer-status").textContent = "";
    show($("answer-error"), false);
    clear($("answer-text"));
    clear($("citations"));
    clear($("related"));
    show($("answer-heading"), true);
    if (res.found) {
      show($("not-found"), false);
      appendWithMarkers($("answer-text"), res.answer);
      for (const c of res.citations || []) $("citations").appendChild(citationItem(c));
      show($("citations-section"), (res.citations || []).length > 0);
      show($("related-section"), false);
    } else {
      $("not-found").textContent = res.answer || "資料の中に回答が見つかりませんでした。";
      show($("not-found"), true);
      show($("citations-section"), false);
      for (const c of res.citations || []) $("related").appendChild(citationItem(c));
      show($("related-section"), (res.citations || []).length > 0);
    }
    const parts = [];
    if (res.mode === "extractive") parts.push("抽出回答");
    else if (res.mode === "generated") parts.push("生成回答（検証済み）");
    const t = seconds(res.took_ms);
    if (t) parts.push(t);
    $("answer-meta").textContent = parts.join("・");
    clear($("answer-warnings"));
    for (const w of res.warnings || []) $("answer-warnings").appendChild(el("li", "", w));
    show($("answer-tools"), true);
    resetFeedback();
    setAnswerState("done");
  }

  function showAskError(message) {
    $("answer-status").textContent = "";
    $("answer-error").textContent = message;
    show($("answer-error"), true);
    setAnswerState("error");
  }

  function parseSseBlock(block) {
    let event = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const idx = line.indexOf(":");
      const field = idx < 0 ? line : line.slice(0, idx);
      let value = idx < 0 ? "" : line.slice(idx + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length === 0) return null;
    return { event, data: data.join("\n") };
  }

  function handleEvent(ev, seq) {
    if (seq !== state.askSeq) return "stale";
    let data;
    try { data = JSON.parse(ev.data); } catch (_) { return "continue"; }
    switch (ev.event) {
      case "passages":
        if (Array.isArray(data.passages)) {
          for (const c of data.passages) if (c && c.n !== undefined && !state.citationMap.has(Number(c.n))) state.citationMap.set(Number(c.n), c);
        }
        if ($("answer").dataset.state === "loading") $("answer-status").textContent = "資料を調べています…";
        return "continue";
      case "sentence":
        if ($("answer").dataset.state !== "streaming") {
          setAnswerState("streaming");
          show($("answer-heading"), true);
          $("answer-status").textContent = "回答を作成しています…";
        }
        appendSentence(data);
        return "continue";
      case "answer":
        renderFinal(data);
        return "done";
      case "error":
        showAskError((data && (data.message || (data.error && data.error.message))) || "回答の作成中にエラーが発生しました。");
        return "done";
      default:
        return "continue";
    }
  }

  async function ask(question) {
    question = String(question || "").trim();
    if (!question) {
      $("question").focus();
      return;
    }
    if (state.askController) state.askController.abort();
    const controller = new AbortController();
    state.askController = controller;
    const seq = ++state.askSeq;
    state.lastQuestion = question;
    addHistory(question);
    syncUrl(question);
    resetAnswer();
    setAnswerState("loading");
    $("answer-status").textContent = "回答を準備しています…";
    $("ask-submit").disabled = true;

    try {
      let res;
      try {
        res = await fetch("/v1/ask", {
          method: "POST",
          credentials: "same-origin",
          signal: controller.signal,
          headers: {
            "Content-Type": "application/json",
            Accept: "text/event-stream",
            "X-CSRF-Token": (state.session && state.session.csrf_token) || "",
          },
          body: JSON.stringify({ question, stream: true }),
        });
      } catch (e) {
        if (e && e.name === "AbortError") return;
        throw new ApiError(NETWORK_MSG, 0);
      }
      if (seq !== state.askSeq) return;
      if (res.status === 401) {
        onUnauthorized();
        return;
      }
      if (!res.ok) throw await errorFromResponse(res);
      const type = res.headers.get("Content-Type") || "";
      if (!type.includes("text/event-stream")) {
        // Non-streaming fallback: a plain AskResponse.
        renderFinal(await res.json());
        return;
      }
      if (!res.body || !res.body.getReader) {
        const text = await res.text();
        let outcome = "continue";
        for (const block of text.split(/\r?\n\r?\n/)) {
          const ev = parseSseBlock(block);
          if (ev) outcome = handleEvent(ev, seq);
          if (outcome !== "continue") break;
        }
        if (outcome === "continue") throw new ApiError("回答の受信が途中で終了しました。もう一度お試しください。", 0);
        return;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder("utf-8");
      let buffer = "";
      let outcome = "continue";
      while (outcome === "continue") {
        let chunk;
        try {
          chunk = await reader.read();
        } catch (e) {
          if (e && e.name === "AbortError") return;
          throw new ApiError("回答の受信が途中で途切れました。もう一度お試しください。", 0);
        }
        if (chunk.done) {
          buffer += decoder.decode();
          const ev = parseSseBlock(buffer);
          if (ev) outcome = handleEvent(ev, seq);
          break;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        let m;
        while (outcome === "continue" && (m = /\r?\n\r?\n/.exec(buffer)) !== null) {
          const block = buffer.slice(0, m.index);
          buffer = buffer.slice(m.index + m[0].length);
          const ev = parseSseBlock(block);
          if (ev) outcome = handleEvent(ev, seq);
        }
      }
      if (outcome === "stale") return;
      if (outcome === "continue") throw new ApiError("回答の受信が途中で終了しました。もう一度お試しください。", 0);
      try { reader.cancel(); } catch (_) { /* ignore */ }
    } catch (e) {
      if (seq !== state.askSeq) return;
      if (e && e.name === "AbortError") return;
      showAskError(e.message || "回答を取得できませんでした。");
    } finally {
      if (seq === state.askSeq) {
        $("ask-submit").disabled = false;
        state.askController = null;
      }
    }
  }

  function syncUrl(question) {
    try {
      const url = location.pathname + "?q=" + encodeURIComponent(question) + location.hash;
      history.replaceState(null, "", url);
    } catch (_) { /* ignore */ }
  }

  // ---------- history ----------

  function loadHistory() {
    try {
      const raw = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
      return Array.isArray(raw) ? raw.filter((q) => typeof q === "string" && q.trim()).slice(0, HISTORY_MAX) : [];
    } catch (_) {
      return [];
    }
  }

  function saveHistory(list) {
    try { localStorage.setItem(HISTORY_KEY, JSON.stringify(list)); } catch (_) { /* storage may be unavailable */ }
  }

  function addHistory(q) {
    const list = loadHistory().filter((x) => x !== q);
    list.unshift(q);
    saveHistory(list.slice(0, HISTORY_MAX));
    renderHistory();
  }

  function renderHistory() {
    const list = loadHistory();
    const ul = $("history");
    clear(ul);
    for (const q of list) {
      const li = el("li");
      const b = el("button", "history-item", q);
      b.type = "button";
      b.title = q;
      b.addEventListener("click", () => {
        $("question").value = q;
        ask(q);
      });
      li.appendChild(b);
      ul.appendChild(li);
    }
    show($("history-empty"), list.length === 0);
    $("history-clear").disabled = list.length === 0;
  }

  // ---------- copy ----------

  function referenceLine(c) {
    const parts = [c.owner_name || c.owner, locationOf(c), headingLabel(c.heading_path, "＞")].filter(Boolean);
    let line = "[" + c.n + "] " + (c.title || c.doc_id || "");
    if (parts.length) line += "（" + parts.join(", ") + "）";
    const quote = String(c.text || "").split(/\r?\n/).map((l) => "> " + l).join("\n");
    return line + "\n" + quote;
  }

  function answerMarkdown() {
    const r = state.result;
    if (!r) return "";
    const out = [];
    out.push(r.answer || "");
    const cites = r.citations || [];
    if (cites.length) {
      out.push("");
      if (!r.found) out.push("関連する箇所（回答の根拠ではありません）", "");
      out.push(cites.map(referenceLine).join("\n\n"));
    }
    return out.join("\n") + "\n";
  }

  async function copyText(text, okMessage) {
    const status = $("copy-status");
    show($("copy-fallback-wrap"), false);
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
      await navigator.clipboard.writeText(text);
      status.textContent = okMessage;
      return;
    } catch (_) { /* fall back */ }
    const ta = $("copy-fallback");
    ta.value = text;
    show($("copy-fallback-wrap"), true);
    ta.focus();
    ta.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    if (ok) {
      status.textContent = okMessage;
      show($("copy-fallback-wrap"), false);
      $("copy-markdown").focus();
    } else {
      status.textContent = "テキストを選択しました。";
    }
  }

  // ---------- feedback ----------

  function setRating(r) {
    state.rating = r;
    $("feedback-up").setAttribute("aria-pressed", String(r === "up"));
    $("feedback-down").setAttribute("aria-pressed", String(r === "down"));
    $("feedback-status").textContent = "";
  }

  async function sendFeedback() {
    const r = state.result;
    const status = $("feedback-status");
    if (!r) return;
    if (!state.rating) {
      status.textContent = "「役に立った」か「役に立たなかった」を選んでください。";
      $("feedback-up").focus();
      return;
    }
    const comment = $("feedback-comment").value.trim();
    $("feedback-submit").disabled = true;
    status.textContent = "送信しています…";
    try {
      await api("POST", "/v1/feedback", {
        question: state.lastQuestion,
        answer: r.answer || "",
        mode: r.mode || "",
        found: !!r.found,
        rating: state.rating,
        comment: comment || null,
        citations: (r.citations || []).map((c) => ({ doc_id: c.doc_id, version: c.version })),
      });
      if (r !== state.result) return;
      status.textContent = "ご意見ありがとうございました。";
      $("feedback-up").disabled = true;
      $("feedback-down").disabled = true;
      $("feedback-comment").disabled = true;
    } catch (e) {
      if (e.status === 401) return;
      status.textContent = e.message;
      $("feedback-submit").disabled = false;
    }
  }

  // ---------- viewer ----------

  function metaText(node, value) {
    node.textContent = value || "—";
  }

  // item: Citation / search passage / { document } ; highlights: strings
  function openViewer(item, highlights, opener, docOnly) {
    const dlg = $("viewer");
    const seq = ++state.viewerSeq;
    state.viewer = { item, highlights: highlights || [], opener: opener || document.activeElement, docOnly: !!docOnly };
    $("viewer-title").textContent = item.title || item.doc_id || "";
    metaText($("viewer-owner"), item.owner_name || item.owner);
    metaText($("viewer-kind"), kindLabel(item.kind));
    metaText($("viewer-date"), formatDate(item.date));
    metaText($("viewer-location"), docOnly ? (item.page_count ? "全" + item.page_count + "ページ" : "") : locationOf(item));
    metaText($("viewer-heading"), headingLabel(item.heading_path, " ＞ "));
    $("viewer-location").parentElement.hidden = false;
    $("viewer-heading").parentElement.hidden = !!docOnly;
    show($("viewer-ocr"), !!item.ocr);
    const vt = $("viewer-text");
    clear(vt);
    if (!docOnly) highlightInto(vt, item.text, state.viewer.highlights);
    show($("viewer-text-wrap"), !docOnly);
    show($("viewer-context"), !docOnly && item.ordinal !== undefined && item.ordinal !== null);
    $("viewer-context").disabled = false;
    $("viewer-full").disabled = false;
    $("viewer-status").textContent = "";
    clear($("viewer-neighbours"));
    clear($("viewer-document"));
    show($("viewer-neighbours-wrap"), false);
    show($("viewer-document-wrap"), false);
    if (!dlg.open) dlg.showModal();
    $("viewer-body").scrollTop = 0;
    $("viewer-close").focus();
    if (docOnly) loadFullDocument(seq);
  }

  function closeViewer() {
    const dlg = $("viewer");
    if (dlg.open) dlg.close();
  }

  function onViewerClosed() {
    state.viewerSeq++;
    const v = state.viewer;
    state.viewer = null;
    if (v && v.opener && document.contains(v.opener) && typeof v.opener.focus === "function") {
      v.opener.focus();
    } else {
      // Opener was re-rendered (e.g. final answer replaced streamed sentences): find its twin.
      const n = v && v.item && v.item.n;
      const twin = n !== undefined ? document.querySelector('#answer-text .cite[data-n="' + n + '"]') : null;
      if (twin) twin.focus();
    }
  }

  function passageBlock(p, isCurrent, withId) {
    const block = el("section", "passage" + (isCurrent ? " current" : ""));
    block.dataset.ordinal = String(p.ordinal);
    if (withId) block.id = "p-" + p.ordinal;
    const label = [locationOf(p), headingLabel(p.heading_path, " ＞ ")].filter(Boolean).join("・");
    if (label || isCurrent) {
      const lab = el("p", "passage-label", label);
      if (isCurrent) {
        const tag = el("span", "current-tag", "引用箇所");
        lab.insertBefore(tag, lab.firstChild);
        if (label) tag.after(document.createTextNode(" "));
      }
      block.appendChild(lab);
    }
    const body = el("div", "passage-text");
    highlightInto(body, p.text, isCurrent ? state.viewer.highlights : []);
    block.appendChild(body);
    if (isCurrent) block.setAttribute("aria-current", "true");
    return block;
  }

  function passagesUrl(docId, around, radius) {
    let url = "/v1/passages?doc_id=" + encodeURIComponent(docId);
    if (around !== undefined) url += "&around=" + encodeURIComponent(around) + "&radius=" + radius;
    return url;
  }

  async function loadContext() {
    const v = state.viewer;
    if (!v) return;
    const seq = state.viewerSeq;
    const btn = $("viewer-context");
    btn.disabled = true;
    $("viewer-status").textContent = "前後の文脈を読み込んでいます…";
    try {
      const data = await api("GET", passagesUrl(v.item.doc_id, v.item.ordinal, 2));
      if (seq !== state.viewerSeq) return;
      const box = $("viewer-neighbours");
      clear(box);
      for (const p of data.passages || []) box.appendChild(passageBlock(p, p.ordinal === v.item.ordinal, false));
      show($("viewer-document-wrap"), false);
      show($("viewer-neighbours-wrap"), true);
      $("viewer-status").textContent = "前後の文脈を表示しました。";
      const cur = box.querySelector(".current");
      if (cur) cur.scrollIntoView({ block: "center" });
    } catch (e) {
      if (seq !== state.viewerSeq || e.status === 401) return;
      $("viewer-status").textContent = e.message;
    } finally {
      if (seq === state.viewerSeq) btn.disabled = false;
    }
  }

  async function loadFullDocument(seqArg) {
    const v = state.viewer;
    if (!v) return;
    const seq = seqArg || state.viewerSeq;
    const btn = $("viewer-full");
    btn.disabled = true;
    $("viewer-status").textContent = "資料全体を読み込んでいます…";
    try {
      const data = await api("GET", passagesUrl(v.item.doc_id));
      if (seq !== state.viewerSeq) return;
      const box = $("viewer-document");
      clear(box);
      const current = v.docOnly ? null : v.item.ordinal;
      const frag = document.createDocumentFragment();
      for (const p of data.passages || []) frag.appendChild(passageBlock(p, current !== null && p.ordinal === current, true));
      box.appendChild(frag);
      if (v.docOnly && data.document) {
        const d = data.document;
        metaText($("viewer-owner"), d.owner_name || d.owner);
        metaText($("viewer-kind"), kindLabel(d.kind));
        metaText($("viewer-date"), formatDate(d.date));
      }
      show($("viewer-neighbours-wrap"), false);
      show($("viewer-document-wrap"), true);
      $("viewer-status").textContent = "資料全体（" + (data.passages || []).length + "パッセージ）を表示しました。";
      const cur = current !== null ? document.getElementById("p-" + current) : null;
      if (cur) cur.scrollIntoView({ block: "center" });
    } catch (e) {
      if (seq !== state.viewerSeq || e.status === 401) return;
      $("viewer-status").textContent = e.message;
    } finally {
      if (seq === state.viewerSeq) btn.disabled = false;
    }
  }

  function openCitation(n, opener) {
    const c = state.citationMap.get(Number(n));
    if (!c) {
      $("answer-status").textContent = "出典" + n + "は回答の完成後に表示できます。";
      return;
    }
    openViewer(c, c.highlights || [], opener, false);
  }

  // ---------- documents / filters ----------

  function fillSelect(select, entries, firstLabel) {
    const prev = select.value;
    clear(select);
    const first = el("option", "", firstLabel);
    first.value = "";
    select.appendChild(first);
    for (const [value, label] of entries) {
      const o = el("option", "", label);
      o.value = value;
      select.appendChild(o);
    }
    if (entries.some(([v]) => v === prev)) select.value = prev;
  }

  function ownerEntries() {
    const m = new Map();
    for (const d of state.documents) if (d.owner && !m.has(d.owner)) m.set(d.owner, d.owner_name || d.owner);
    return [...m.entries()].sort((a, b) => a[1].localeCompare(b[1], "ja"));
  }

  function kindEntries(extra) {
    const s = new Set(extra || []);
    for (const d of state.documents) if (d.kind) s.add(d.kind);
    return [...s].map((k) => [k, kindLabel(k)]).sort((a, b) => a[1].localeCompare(b[1], "ja"));
  }

  let docsLoading = null;
  async function loadDocuments() {
    if (!state.session) return;
    if (docsLoading) return docsLoading;
    const status = $("documents-status");
    if (state.documents.length === 0) status.textContent = "資料一覧を読み込んでいます…";
    docsLoading = (async () => {
      try {
        const data = await api("GET", "/v1/documents");
        state.documents = Array.isArray(data.documents) ? data.documents : [];
        show($("documents-error"), false);
        const owners = ownerEntries();
        fillSelect($("documents-owner"), owners, "すべて");
        fillSelect($("documents-kind"), kindEntries(), "すべて");
        // The search filters show counts: refresh them from the facets.
        state.facets = null;
        if (!$("search-view").hidden) loadFacets();
        fillSelect($("upload-kind"), kindEntries(UPLOAD_KINDS), "指定しない");
        fillSelect($("compare-doc"), state.documents.map((d) => [d.doc_id, d.title || d.doc_id]), "資料を選んでください");
        renderDocuments();
      } catch (e) {
        if (e.status === 401) return;
        status.textContent = "";
        $("documents-error").textContent = e.message;
        show($("documents-error"), true);
      } finally {
        docsLoading = null;
      }
    })();
    return docsLoading;
  }

  function renderDocuments() {
    const tbody = $("documents-table").tBodies[0];
    clear(tbody);
    const filter = $("documents-filter").value.trim().toLowerCase();
    const owner = $("documents-owner").value;
    const kind = $("documents-kind").value;
    const editable = canEdit();
    const org = state.session ? state.session.org : null;
    const rows = state.documents.filter((d) =>
      (!filter || String(d.title || d.doc_id || "").toLowerCase().includes(filter)) &&
      (!owner || d.owner === owner) && (!kind || d.kind === kind));
    for (const d of rows) {
      const tr = el("tr");
      tr.dataset.docId = d.doc_id;
      const th = el("th", "title-cell");
      th.scope = "row";
      const open = el("button", "link-button open-doc", d.title || d.doc_id);
      open.type = "button";
      open.title = "資料全体を表示";
      open.addEventListener("click", () => openViewer(d, [], open, true));
      th.appendChild(open);
      tr.appendChild(th);
      tr.appendChild(el("td", "", d.owner_name || d.owner || ""));
      tr.appendChild(el("td", "", kindLabel(d.kind)));
      tr.appendChild(el("td", "nowrap", formatDate(d.date) || "—"));
      tr.appendChild(el("td", "num", d.page_count === null || d.page_count === undefined ? "—" : d.page_count));
      tr.appendChild(el("td", "num", d.chunk_count === null || d.chunk_count === undefined ? "—" : d.chunk_count));
      const act = el("td", "actions-col");
      if (editable && d.owner === org) {
        const del = el("button", "delete-doc danger small", "削除");
        del.type = "button";
        del.setAttribute("aria-label", "『" + (d.title || d.doc_id) + "』を削除");
        del.addEventListener("click", () => deleteDocument(d, del));
        act.appendChild(del);
      }
      tr.appendChild(act);
      tbody.appendChild(tr);
    }
    const total = state.documents.length;
    $("documents-status").textContent = total === 0 ? "閲覧できる資料はありません。"
      : rows.length === total ? total + "件の資料" : total + "件中" + rows.length + "件を表示";
  }

  function confirmDialog(message) {
    const dlg = $("confirm-dialog");
    $("confirm-message").textContent = message;
    return new Promise((resolve) => {
      state.confirmResolve = resolve;
      dlg.returnValue = "";
      dlg.showModal();
      $("confirm-no").focus();
    });
  }

  function finishConfirm(result) {
    const dlg = $("confirm-dialog");
    const resolve = state.confirmResolve;
    state.confirmResolve = null;
    if (dlg.open) dlg.close();
    if (resolve) resolve(result);
  }

  function docPath(docId) {
    return "/v1/documents/" + String(docId).split("/").map(encodeURIComponent).join("/");
  }

  async function deleteDocument(d, button) {
    const title = d.title || d.doc_id;
    const ok = await confirmDialog("『" + title + "』を削除しますか。この操作は取り消せません。");
    if (!ok) {
      if (document.contains(button)) button.focus();
      return;
    }
    button.disabled = true;
    try {
      await api("DELETE", docPath(d.doc_id));
      show($("documents-error"), false);
      await loadDocuments();
      $("documents-status").textContent = "『" + title + "』を削除しました。" + $("documents-status").textContent;
      $("documents-filter").focus();
    } catch (e) {
      if (e.status === 401) return;
      $("documents-error").textContent = e.message;
      show($("documents-error"), true);
      if (document.contains(button)) {
        button.disabled = false;
        button.focus();
      }
    }
  }

  // ---------- upload ----------

  function uploadOne(file, metadata, li, bar) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/documents");
      xhr.withCredentials = true;
      xhr.setRequestHeader("X-CSRF-Token", (state.session && state.session.csrf_token) || "");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) {
          bar.max = e.total;
          bar.value = e.loaded;
        }
      };
      xhr.onload = () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
        if (xhr.status >= 200 && xhr.status < 300) resolve({ ok: true, body });
        else resolve({ ok: false, status: xhr.status, message: errorFromBody(body, xhr.status).message });
      };
      xhr.onerror = () => resolve({ ok: false, status: 0, message: NETWORK_MSG });
      xhr.onabort = () => resolve({ ok: false, status: 0, message: "中断されました。" });
      const fd = new FormData();
      fd.append("file", file, file.name);
      fd.append("metadata", JSON.stringify(metadata));
      xhr.send(fd);
    });
  }

  async function uploadFiles(event) {
    event.preventDefault();
    const input = $("upload-files");
    const files = [...(input.files || [])];
    const err = $("upload-error");
    err.textContent = "";
    if (files.length === 0) {
      err.textContent = "ファイルを選んでください。";
      input.focus();
      return;
    }
    const metadata = { readers: $("upload-readers-public").checked ? ["public"] : [state.session.org] };
    const kind = $("upload-kind").value;
    if (kind) metadata.kind = kind;
    const results = $("upload-results");
    clear(results);
    const rows = files.map((f) => {
      const li = el("li", "pending");
      const name = el("span", "file-name", f.name);
      const bar = el("progress");
      bar.max = 1;
      bar.value = 0;
      bar.setAttribute("aria-label", f.name + " の送信状況");
      const msg = el("span", "file-status", "待機中");
      li.append(name, bar, msg);
      results.appendChild(li);
      return { f, li, bar, msg };
    });
    $("upload-submit").disabled = true;
    let anyOk = false;
    for (const r of rows) {
      if (!state.session) break;
      r.msg.textContent = "送信中…";
      const res = await uploadOne(r.f, metadata, r.li, r.bar);
      if (res.status === 401) {
        onUnauthorized();
        return;
      }
      r.bar.remove();
      r.li.className = res.ok ? "ok" : "error";
      r.msg.textContent = res.ok ? "成功" : res.message;
      r.li.firstChild.textContent = r.f.name + "：";
      if (res.ok) anyOk = true;
    }
    $("upload-submit").disabled = false;
    input.value = "";
    if (anyOk) loadDocuments();
  }

  // ---------- search ----------

  async function runSearch(event) {
    event.preventDefault();
    const query = $("search-query").value.trim();
    const meta = $("search-meta");
    const errBox = $("search-error");
    show(errBox, false);
    if (!query) {
      meta.textContent = "検索語を入力してください。";
      $("search-query").focus();
      return;
    }
    const filters = {};
    const owner = $("search-owner").value;
    const kind = $("search-kind").value;
    const year = $("search-year").value;
    const from = $("search-from").value || year;
    const to = $("search-to").value || year;
    if (owner) filters.owner = owner;
    if (kind) filters.kind = kind;
    if (from) filters.date_from = from;
    if (to) filters.date_to = to;
    const body = { query, top_k: 10 };
    if (Object.keys(filters).length) body.filters = filters;
    $("search-submit").disabled = true;
    meta.textContent = "検索しています…";
    try {
      const data = await api("POST", "/v1/search", body);
      const list = $("search-results");
      clear(list);
      const passages = Array.isArray(data.passages) ? data.passages : [];
      for (const p of passages) list.appendChild(searchItem(p));
      const t = seconds(data.took_ms);
      meta.textContent = (passages.length ? passages.length + "件見つかりました" : "該当する箇所は見つかりませんでした") + (t ? "・" + t : "");
    } catch (e) {
      if (e.status === 401) return;
      meta.textContent = "";
      errBox.textContent = e.message;
      show(errBox, true);
    } finally {
      $("search-submit").disabled = false;
    }
  }

  function searchItem(p) {
    const li = el("li", "result");
    const head = el("div", "result-head");
    const open = el("button", "open-passage link-button", p.title || p.doc_id);
    open.type = "button";
    open.addEventListener("click", () => openViewer(p, [], open, false));
    head.appendChild(open);
    li.appendChild(head);
    const meta = [p.owner_name || p.owner, kindLabel(p.kind), formatDate(p.date), locationOf(p)].filter(Boolean).join("・");
    li.appendChild(el("p", "cite-meta", meta));
    const heading = headingLabel(p.heading_path, " ＞ ");
    if (heading) li.appendChild(el("p", "cite-heading", heading));
    const text = el("p", "result-text");
    highlightInto(text, p.text, p.matched_terms || []);
    li.appendChild(text);
    return li;
  }

  // ---------- export ----------

  // POSTs a result to /v1/export and saves the file the server writes.
  async function exportResult(result, format, statusNode) {
    statusNode.textContent = "ファイルを作成しています…";
    let res;
    try {
      res = await fetch("/v1/export?format=" + format, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "X-CSRF-Token": (state.session && state.session.csrf_token) || "",
        },
        body: JSON.stringify(result),
      });
    } catch (_) {
      statusNode.textContent = NETWORK_MSG;
      return;
    }
    if (res.status === 401) {
      onUnauthorized();
      return;
    }
    if (!res.ok) {
      statusNode.textContent = (await errorFromResponse(res)).message;
      return;
    }
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = "hikitsugi-" + (result.groups ? "比較" : "回答") + "." + format;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    statusNode.textContent = (format === "docx" ? "Word" : "Markdown") + "ファイルを保存しました（" + Math.max(1, Math.round(blob.size / 1024)) + " KB）。";
  }

  function exportAnswer(format) {
    const r = state.result;
    if (!r) return;
    exportResult(Object.assign({ question: state.lastQuestion }, r), format, $("copy-status"));
  }

  // ---------- compare ----------

  function syncCompareForm() {
    const bySection = $("compare-group-by").value === "section";
    show($("compare-doc-field"), bySection);
  }

  // `group` is a group's index, or "synthesis" for the synthesis's citations; `groupLabel`
  // names the group a synthesis citation belongs to.
  function compareCitation(c, group, groupLabel) {
    const b = el("button", "cite-open compact");
    b.type = "button";
    b.dataset.group = String(group);
    b.dataset.n = String(c.n);
    const head = el("span", "cite-head");
    head.appendChild(el("span", "cite-num", "[" + c.n + "]"));
    head.appendChild(el("span", "cite-title", c.title || c.doc_id || ""));
    b.appendChild(head);
    const meta = [groupLabel, locationOf(c), headingLabel(c.heading_path, " ＞ ")].filter(Boolean).join("・");
    if (meta) b.appendChild(el("span", "cite-meta", meta));
    return b;
  }

  function clearSynthesis() {
    clear($("compare-synthesis-text"));
    clear($("compare-synthesis-warnings"));
    clear($("compare-synthesis-cites"));
    show($("compare-synthesis-box"), false);
  }

  // The paragraph on what the groups share and where they differ, above the table.
  function renderSynthesis(synthesis, groups) {
    clearSynthesis();
    if (!synthesis) return;
    const labels = new Map(groups.map((g) => [g.key, g.label || g.key]));
    if (synthesis.found) {
      const text = $("compare-synthesis-text");
      appendWithMarkers(text, synthesis.text);
      for (const b of text.querySelectorAll(".cite")) b.dataset.group = "synthesis";
    }
    for (const w of synthesis.warnings || []) $("compare-synthesis-warnings").appendChild(el("li", null, w));
    for (const c of synthesis.citations || []) {
      const li = el("li");
      li.appendChild(compareCitation(c, "synthesis", labels.get(c.group) || c.group));
      $("compare-synthesis-cites").appendChild(li);
    }
    show($("compare-synthesis-box"), true);
  }

  function renderComparison(data) {
    state.comparison = data;
    const tbody = $("compare-table").tBodies[0];
    clear(tbody);
    const groups = Array.isArray(data.groups) ? data.groups : [];
    groups.forEach((g, index) => {
      const tr = el("tr", g.found ? "group found" : "group not-found");
      tr.dataset.key = g.key;
      const th = el("th", "group-label", g.label || g.key);
      th.scope = "row";
      tr.appendChild(th);
      const answer = el("td", "group-answer");
      if (g.found) {
        const text = el("div", "answer-text");
        appendWithMarkers(text, g.answer);
        for (const b of text.querySelectorAll(".cite")) b.dataset.group = String(index);
        answer.appendChild(text);
      } else {
        answer.appendChild(el("p", "not-found", "このグループの資料には記述が見つかりませんでした。"));
      }
      tr.appendChild(answer);
      const cites = el("td", "group-citations");
      if (g.found) {
        const list = el("ol", "compact-cites");
        for (const c of g.citations || []) {
          const li = el("li");
          li.appendChild(compareCitation(c, index));
          list.appendChild(li);
        }
        cites.appendChild(list);
      } else {
        cites.appendChild(el("span", "hint", "—"));
      }
      tr.appendChild(cites);
      tbody.appendChild(tr);
    });
    renderSynthesis(data.synthesis, groups);
    const found = groups.filter((g) => g.found).length;
    const t = seconds(data.took_ms);
    $("compare-meta").textContent = groups.length
      ? groups.length + "グループ中" + found + "グループに記述がありました" + (t ? "・" + t : "")
      : "比較できるグループがありません。";
    show($("compare-wrap"), groups.length > 0);
    show($("compare-tools"), groups.length > 0);
    $("compare-export-status").textContent = "";
  }

  async function runCompare(event) {
    event.preventDefault();
    const question = $("compare-question").value.trim();
    const meta = $("compare-meta");
    const errBox = $("compare-error");
    show(errBox, false);
    if (!question) {
      meta.textContent = "質問を入力してください。";
      $("compare-question").focus();
      return;
    }
    const groupBy = $("compare-group-by").value;
    const body = { question, group_by: groupBy };
    if ($("compare-synthesis").checked) body.synthesis = true;
    if (groupBy === "section") {
      const doc = $("compare-doc").value;
      if (!doc) {
        meta.textContent = "章ごとに比べる資料を選んでください。";
        $("compare-doc").focus();
        return;
      }
      body.filters = { doc_id: doc };
    }
    const seq = ++state.compareSeq;
    $("compare-submit").disabled = true;
    meta.textContent = "グループごとに回答を作成しています…";
    try {
      const data = await api("POST", "/v1/compare", body);
      if (seq !== state.compareSeq) return;
      renderComparison(data);
    } catch (e) {
      if (e.status === 401 || seq !== state.compareSeq) return;
      meta.textContent = "";
      errBox.textContent = e.message;
      show(errBox, true);
    } finally {
      if (seq === state.compareSeq) $("compare-submit").disabled = false;
    }
  }

  function openCompareCitation(target) {
    const data = state.comparison;
    if (!data) return;
    const group = target.dataset.group === "synthesis" ? data.synthesis : (data.groups || [])[Number(target.dataset.group)];
    if (!group) return;
    const c = (group.citations || []).find((x) => Number(x.n) === Number(target.dataset.n));
    if (c) openViewer(c, c.highlights || [], target, false);
  }

  // ---------- similar cases ----------

  function similarItem(p) {
    const li = searchItem(p);
    li.classList.add("similar");
    if (Array.isArray(p.matched_terms) && p.matched_terms.length) {
      const terms = el("p", "shared-terms");
      terms.appendChild(el("span", "hint", "共通する語："));
      for (const t of p.matched_terms) terms.appendChild(el("span", "term", t));
      li.insertBefore(terms, li.querySelector(".result-text"));
    }
    return li;
  }

  async function runSimilar(event) {
    event.preventDefault();
    const text = $("similar-text").value.trim();
    const meta = $("similar-meta");
    const errBox = $("similar-error");
    show(errBox, false);
    if (!text) {
      meta.textContent = "下書きを入力してください。";
      $("similar-text").focus();
      return;
    }
    $("similar-submit").disabled = true;
    meta.textContent = "似た事例を探しています…";
    try {
      const data = await api("POST", "/v1/similar", { text, top_k: 8, exclude_owner: $("similar-exclude-own").checked });
      const list = $("similar-results");
      clear(list);
      const passages = Array.isArray(data.passages) ? data.passages : [];
      for (const p of passages) list.appendChild(similarItem(p));
      const t = seconds(data.took_ms);
      meta.textContent = (passages.length ? passages.length + "件の似た箇所が見つかりました" : "似た箇所は見つかりませんでした") + (t ? "・" + t : "");
    } catch (e) {
      if (e.status === 401) return;
      meta.textContent = "";
      errBox.textContent = e.message;
      show(errBox, true);
    } finally {
      $("similar-submit").disabled = false;
    }
  }

  // ---------- facets ----------

  async function loadFacets() {
    if (!state.session || state.facets) return;
    try {
      const data = await api("GET", "/v1/facets");
      state.facets = data;
      const withCount = (f, label) => [f.key, label + "（" + f.documents + "件）"];
      fillSelect($("search-owner"), (data.owners || []).map((f) => withCount(f, f.label)), "すべて");
      fillSelect($("search-kind"), (data.kinds || []).map((f) => withCount(f, kindLabel(f.key))), "すべて");
      fillSelect($("search-year"), (data.years || []).filter((f) => f.key).map((f) => withCount(f, f.label)), "すべて");
      $("search-facets").textContent = "閲覧できる資料：" + data.documents + "件・" + data.passages + "箇所";
    } catch (e) {
      if (e.status === 401) return;
      $("search-facets").textContent = "";
    }
  }

  // ---------- wiring ----------

  function init() {
    $("signin-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    for (const btn of document.querySelectorAll(".main-nav button")) {
      btn.addEventListener("click", () => switchView(btn.dataset.view, true));
    }

    $("ask-form").addEventListener("submit", (e) => {
      e.preventDefault();
      ask($("question").value);
    });
    $("question").addEventListener("keydown", (e) => {
      if (e.key !== "Enter" || e.shiftKey || e.altKey) return;
      if (e.isComposing || e.keyCode === 229) return;
      e.preventDefault();
      ask($("question").value);
    });

    // Delegated clicks for citation markers and list items.
    $("answer").addEventListener("click", (e) => {
      const t = e.target instanceof Element ? e.target.closest(".cite, .cite-open, li[data-n]") : null;
      if (!t) return;
      const btn = t.matches("li") ? t.querySelector(".cite-open") || t : t;
      openCitation(t.dataset.n, btn);
    });

    $("copy-markdown").addEventListener("click", () => copyText(answerMarkdown(), "Markdownをコピーしました。"));
    $("copy-link").addEventListener("click", () =>
      copyText(location.origin + "/?q=" + encodeURIComponent(state.lastQuestion), "リンクをコピーしました。"));

    $("feedback-up").addEventListener("click", () => setRating("up"));
    $("feedback-down").addEventListener("click", () => setRating("down"));
    $("feedback-submit").addEventListener("click", sendFeedback);

    $("history-clear").addEventListener("click", () => {
      try { localStorage.removeItem(HISTORY_KEY); } catch (_) { /* ignore */ }
      renderHistory();
      $("question").focus();
    });

    $("viewer-close").addEventListener("click", closeViewer);
    $("viewer").addEventListener("close", onViewerClosed);
    $("viewer").addEventListener("click", (e) => {
      if (e.target === $("viewer")) closeViewer(); // backdrop click
    });
    $("viewer-context").addEventListener("click", loadContext);
    $("viewer-full").addEventListener("click", () => loadFullDocument());

    $("confirm-yes").addEventListener("click", () => finishConfirm(true));
    $("confirm-no").addEventListener("click", () => finishConfirm(false));
    $("confirm-dialog").addEventListener("cancel", (e) => {
      e.preventDefault();
      finishConfirm(false);
    });

    $("export-md").addEventListener("click", () => exportAnswer("md"));
    $("export-docx").addEventListener("click", () => exportAnswer("docx"));
    $("compare-form").addEventListener("submit", runCompare);
    $("compare-group-by").addEventListener("change", syncCompareForm);
    for (const id of ["compare-table", "compare-synthesis-box"]) {
      $(id).addEventListener("click", (e) => {
        const t = e.target instanceof Element ? e.target.closest("[data-group]") : null;
        if (t) openCompareCitation(t);
      });
    }
    $("compare-export-md").addEventListener("click", () => exportResult(state.comparison, "md", $("compare-export-status")));
    $("compare-export-docx").addEventListener("click", () => exportResult(state.comparison, "docx", $("compare-export-status")));
    $("similar-form").addEventListener("submit", runSimilar);
    $("similar-text").addEventListener("input", () => {
      $("similar-count").textContent = $("similar-text").value.length + " / 5000字";
    });
    $("search-form").addEventListener("submit", runSearch);
    $("documents-filter").addEventListener("input", renderDocuments);
    $("documents-owner").addEventListener("change", renderDocuments);
    $("documents-kind").addEventListener("change", renderDocuments);
    $("upload-form").addEventListener("submit", uploadFiles);

    boot();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
