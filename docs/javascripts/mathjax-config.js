// MathJax 3 (copied into the site by docs/hooks/site.py) typesets what pymdownx.arithmatex marks, nothing else:
// every element is ignored unless it has the class "arithmatex".
window.MathJax = {
  tex: { inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true, processEnvironments: true },
  options: { ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex" }
};
