// MathJax 2 (copied into the site by docs/hooks/site.py) typesets what pymdownx.arithmatex marks, nothing else
window.MathJax = {
  jax: ["input/TeX", "output/HTML-CSS"],
  extensions: ["tex2jax.js"],
  TeX: { extensions: ["AMSmath.js", "AMSsymbols.js"] },
  tex2jax: { inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true,
             ignoreClass: ".*", processClass: "arithmatex" },
  "HTML-CSS": { availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null },
  showMathMenu: false,
  messageStyle: "none"
};
