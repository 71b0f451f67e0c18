// The admin imports page: once a file is chosen, read its header (POST /admin/imports/columns;
// only the first 64 KiB of a CSV is sent) and offer one select of its columns per field of
// the kind, the needed fields first. The saved mapping of the source and kind, if any,
// preselects its columns and decimals. No build step: served as is (CSP script-src 'self').
(function () {
  "use strict";
  var form = document.getElementById("imp-form");
  if (!form) { return; }
  var kinds = JSON.parse(form.dataset.fields || "{}");
  var saved = JSON.parse(form.dataset.saved || "{}");
  var fileInput = document.getElementById("imp-file");
  var kindSelect = document.getElementById("imp-kind");
  var sourceInput = document.getElementById("imp-source");
  var box = document.getElementById("imp-columns");
  var note = document.getElementById("imp-columns-note");
  var decimals = document.getElementById("imp-decimals");
  var decimalsBox = document.getElementById("imp-decimals-box");
  var accountSource = document.getElementById("imp-account-source");
  var accountSourceBox = document.getElementById("imp-account-source-box");
  var headers = null;
  var SAME = "";

  function savedMapping() {
    return saved[sourceInput.value.trim() + "/" + kindSelect.value] || null;
  }

  function choice(field, chosen, mapped) {
    if (chosen[field] !== undefined && headers.indexOf(chosen[field]) >= 0) { return chosen[field]; }
    if (mapped[field] && headers.indexOf(mapped[field]) >= 0) { return mapped[field]; }
    for (var i = 0; i < headers.length; i++) {
      if (headers[i].toLowerCase() === field.toLowerCase()) { return headers[i]; }
    }
    return SAME;
  }

  // "(needed)", or for one of several fields: "(needed, or member_number or …)"
  function neededText(field, group) {
    if (!group) { return ""; }
    var others = group.filter(function (f) { return f !== field; });
    return others.length ? " (needed, or " + others.join(" or ") + ")" : " (needed)";
  }

  function control(field, group, chosen, mapped) {
    var wrap = document.createElement("div");
    var id = "imp-col-" + field;
    var label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = field + neededText(field, group);
    var select = document.createElement("select");
    select.id = id;
    select.name = "col." + field;
    select.dataset.field = field;
    var same = document.createElement("option");
    same.value = SAME;
    same.textContent = "— same name —";
    select.appendChild(same);
    headers.forEach(function (header) {
      var option = document.createElement("option");
      option.value = header;
      option.textContent = header;
      select.appendChild(option);
    });
    select.value = choice(field, chosen, mapped);
    wrap.appendChild(label);
    wrap.appendChild(select);
    return wrap;
  }

  function render() {
    var spec = kinds[kindSelect.value];
    var chosen = {};
    box.querySelectorAll("select").forEach(function (s) { chosen[s.dataset.field] = s.value; });
    var wasOpen = Boolean(box.querySelector("details[open]"));
    box.replaceChildren();
    if (!spec) { return; }
    decimalsBox.hidden = !spec.money;
    decimals.disabled = !spec.money;
    accountSourceBox.hidden = !spec.account_source;
    accountSource.disabled = !spec.account_source;
    if (!headers) { return; }
    var mapped = (savedMapping() || {}).columns || {};
    var groups = {};
    spec.needed.forEach(function (group) {
      group.forEach(function (f) { groups[f] = group; });
    });
    var more = document.createElement("details");
    var summary = document.createElement("summary");
    summary.textContent = "Other fields";
    more.className = "wide";
    more.open = wasOpen;
    more.appendChild(summary);
    var moreRow = document.createElement("div");
    moreRow.className = "row";
    more.appendChild(moreRow);
    spec.fields.forEach(function (field) {
      var item = control(field, groups[field], chosen, mapped);
      if (groups[field]) { box.appendChild(item); } else { moreRow.appendChild(item); }
    });
    box.appendChild(more);
  }

  // The saved mapping of the source and kind, if any, into the form: its decimals, account
  // source and (when the file has them) columns. The selects are changed in place.
  function applySaved() {
    var mapping = savedMapping();
    if (!mapping) { return; }
    if (mapping.decimals !== undefined) { decimals.value = mapping.decimals; }
    if (mapping.account_source) { accountSource.value = mapping.account_source; }
    var mapped = mapping.columns || {};
    box.querySelectorAll("select").forEach(function (select) {
      var header = mapped[select.dataset.field];
      if (header && headers && headers.indexOf(header) >= 0) { select.value = header; }
    });
  }

  function kindChanged() {
    render();
    applySaved();
  }

  function readHeader() {
    var file = fileInput.files && fileInput.files[0];
    headers = null;
    if (!file) { render(); return; }
    var text = /\.(csv|tsv|txt)$/i.test(file.name);
    var body = new FormData();
    var token = form.querySelector("input[name=csrf_token]").value;
    body.append("csrf_token", token);
    body.append("file", text ? file.slice(0, 65536) : file, file.name);
    note.textContent = "Reading the columns of " + file.name + "…";
    fetch("/admin/imports/columns", {method: "POST", body: body, credentials: "same-origin",
                                     headers: {"X-CSRF-Token": token}})
      .then(function (response) {
        return response.json().then(function (data) { return [response.ok, data]; });
      })
      .then(function (result) {
        if (result[0]) {
          headers = result[1].columns;
          note.textContent = file.name + " has " + headers.length + " columns: choose the " +
            "one that holds each field (“same name”: the column of that name, if any).";
        } else {
          note.textContent = result[1].error;
        }
        render();
      })
      .catch(function () {
        note.textContent = "The columns of " + file.name + " could not be read: name them " +
          "in the advanced mapping.";
        render();
      });
  }

  fileInput.addEventListener("change", readHeader);
  kindSelect.addEventListener("change", kindChanged);
  sourceInput.addEventListener("change", applySaved);
  kindChanged();
}());
