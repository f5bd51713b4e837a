// Step 1 of the submit form (/jobs/submit/): offer only the tiers the chosen department
// has service levels for and the chosen kind allows, and show only the off-peak notice of
// the chosen department and tier. The rules come from the page (the JSON in
// #job-choice-tiers, see jobs.forms.JobChoiceForm.tier_rules). Without this script every
// tier and every notice stays on the page, and the server still checks the choice.
(function () {
  "use strict";

  var form = document.querySelector("form[data-job-choice]");
  var rulesScript = document.getElementById("job-choice-tiers");
  if (!form || !rulesScript) {
    return;
  }
  var rules = JSON.parse(rulesScript.textContent);
  var department = form.elements.namedItem("department");
  var kind = form.elements.namedItem("kind");
  var tier = form.elements.namedItem("tier");
  if (!department || !kind || !tier) {
    return;
  }
  var notices = form.querySelectorAll(".notice.off-peak[data-department][data-tier]");

  function allowedTiers(departmentRules) {
    var kindTiers = rules.kinds[kind.value];
    var tiers = departmentRules.tiers.filter(function (value) {
      return !kindTiers || kindTiers.indexOf(value) !== -1;
    });
    if (tiers.length === 0) {
      // Nothing fits: offer every tier, and let the server say why none is taken.
      tiers = Array.prototype.map.call(tier.options, function (option) {
        return option.value;
      });
    }
    return tiers;
  }

  function update() {
    var departmentRules = rules.departments[department.value] || { tiers: [], default: null };
    var tiers = allowedTiers(departmentRules);
    Array.prototype.forEach.call(tier.options, function (option) {
      var offered = tiers.indexOf(option.value) !== -1;
      option.hidden = !offered;
      option.disabled = !offered;
    });
    if (tiers.indexOf(tier.value) === -1) {
      tier.value = tiers.indexOf(departmentRules.default) !== -1 ? departmentRules.default : tiers[0];
    }
    Array.prototype.forEach.call(notices, function (notice) {
      notice.hidden = !(
        notice.dataset.department === department.value && notice.dataset.tier === tier.value
      );
    });
  }

  department.addEventListener("change", update);
  kind.addEventListener("change", update);
  tier.addEventListener("change", update);
  update();
})();
