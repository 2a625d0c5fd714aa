// MathJax 2 (copied into the site by docs/hooks/site.py) typesets what pymdownx.arithmatex marks, nothing else.
// The package ships the output processors only inside its combined configuration, hence `config`.
window.MathJax = {
  config: ["TeX-AMS-MML_HTMLorMML-full.js"],
  tex2jax: { inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true,
             ignoreClass: ".*", processClass: "arithmatex" },
  "HTML-CSS": { availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null },
  showMathMenu: false,
  messageStyle: "none"
};
