// Package docs holds the operator's and developer's guides; its test
// checks that every link between them, and from the README, resolves.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

var (
	mdLink  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*$`)
	fence   = regexp.MustCompile("(?ms)^```.*?^```")
)

// TestLinksResolve: every relative link in the README, CONTRIBUTING.md and
// docs/ names a file that exists and, with #anchor, a heading in it (as
// GitHub makes anchors of headings).
func TestLinksResolve(t *testing.T) {
	files, _ := filepath.Glob("*.md")
	files = append(files, "../README.md", "../CONTRIBUTING.md", "../deploy/README.md")
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := fence.ReplaceAllString(string(b), "")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(link, "#")
			target := f
			if path != "" {
				target = filepath.Join(filepath.Dir(f), path)
			}
			checked++
			st, err := os.Stat(target)
			if err != nil {
				t.Errorf("%s: link %s: %v", f, link, err)
				continue
			}
			if anchor == "" || st.IsDir() {
				continue
			}
			if !anchors(t, target)[anchor] {
				t.Errorf("%s: link %s: no heading in %s makes #%s", f, link, target, anchor)
			}
		}
	}
	t.Logf("%d links checked in %d files", checked, len(files))
	if checked < 20 {
		t.Fatalf("checked only %d links", checked)
	}
}

// anchors are the anchors GitHub makes of a Markdown file's headings.
func anchors(t *testing.T, path string) map[string]bool {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	seen := map[string]int{}
	for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(string(b), ""), -1) {
		s := slug(m[1])
		if n := seen[s]; n > 0 {
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// slug is GitHub's anchor of a heading: lower case, spaces to hyphens,
// punctuation other than hyphens and underscores dropped.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
