package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The keys each block may hold, in the order they are documented.
var (
	fileKeys  = []string{"version", "extends", "remove", "stages"}
	stageKeys = []string{"name", "plugin", "sha256", "signals", "timeout", "on_failure", "batch", "config", "after", "before"}
	batchKeys = []string{"max_size"}
)

// extensionPrefix starts top-level keys the loader ignores (as docker compose does), so a file
// can hold blocks that stages merge in with anchors: x-common: &common {...}, then <<: *common.
const extensionPrefix = "x-"

// tree is what a walk over the yaml.v3 node tree of a file learns: the line of every key path,
// and the problems koanf's decoding cannot see (unknown or repeated keys, blocks of the wrong
// kind). When fatal is set the document cannot be decoded into the shape the loader expects.
type tree struct {
	file  string
	lines map[string]int
	// stages are the names of the stages, by index, as written (for Error.Stage).
	stages map[int]string
	errs   []*Error
	seen   map[Error]bool
	fatal  bool
}

func scan(file string, data []byte) *tree {
	t := &tree{file: file, lines: map[string]int{}, stages: map[int]string{}, seen: map[Error]bool{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) { // io.EOF: an empty file, reported as a missing version
			t.syntax(err, data)
		}
		return t
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		t.syntax(err, data)
	default:
		t.add(docLine(&extra), "", "a second YAML document (---) starts here: put one pipeline per file", false)
	}
	if len(doc.Content) > 0 {
		t.walkFile(doc.Content[0])
	}
	return t
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntax records a YAML parse error, on the line of the problem when it can be found.
func (t *tree) syntax(err error, data []byte) {
	msg := err.Error()
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		t.add(0, "", "invalid YAML: "+strings.TrimPrefix(msg, "yaml: "), true)
		return
	}
	line, _ := strconv.Atoi(m[1])
	msg = "invalid YAML: " + m[2]
	if at := syntaxLine(data, line, err.Error()); at > line {
		msg += fmt.Sprintf(" (in the block that starts on line %d)", line)
		line = at
	}
	t.add(line, "", msg, true)
}

// syntaxLine finds the line a parse error is on. The YAML parser names the line where the
// enclosing block starts, often far above the mistake; the mistake is on the first line whose
// prefix of the file fails with the same error (found by bisection: a prefix that ends before the
// mistake parses, or fails differently). It returns 0 when no line after from qualifies.
func syntaxLine(data []byte, from int, want string) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	fails := func(n int) bool {
		dec := yaml.NewDecoder(bytes.NewReader(bytes.Join(lines[:n], nil)))
		var v yaml.Node
		err := dec.Decode(&v)
		for err == nil {
			err = dec.Decode(&v)
		}
		return !errors.Is(err, io.EOF) && err.Error() == want
	}
	lo, hi := max(from, 1), len(lines)
	if lo > hi || !fails(hi) {
		return 0
	}
	for lo < hi {
		if mid := (lo + hi) / 2; fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

func (t *tree) add(line int, path, msg string, fatal bool) {
	e := Error{File: t.file, Line: line, Path: path, Stage: t.stageOf(path), Msg: msg}
	if t.seen[e] { // a block merged in twice (<<: *x) would report its problems twice
		return
	}
	t.seen[e] = true
	t.errs = append(t.errs, &e)
	t.fatal = t.fatal || fatal
}

// stageOf is the name of the stage path is in ("stages[2].timeout": the third's), or "".
func (t *tree) stageOf(path string) string {
	rest, ok := strings.CutPrefix(path, "stages[")
	if !ok {
		return ""
	}
	n, _, ok := strings.Cut(rest, "]")
	if !ok {
		return ""
	}
	i, err := strconv.Atoi(n)
	if err != nil {
		return ""
	}
	return t.stages[i]
}

// mark records the line of path; the first one wins.
func (t *tree) mark(path string, line int) {
	if _, ok := t.lines[path]; !ok {
		t.lines[path] = line
	}
}

// line is the line of path, or of its nearest ancestor that has one; 0 if none does.
func (t *tree) line(path string) int {
	for {
		if l, ok := t.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

func (t *tree) walkFile(n *yaml.Node) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		t.add(n.Line, "", fmt.Sprintf("must be a mapping with version and stages, not %s", kindName(n)), true)
		return
	}
	for _, f := range t.fields(n, "") {
		switch key := f.key.Value; key {
		case "version", "extends":
			t.mark(key, f.key.Line)
		case "remove":
			t.mark(key, f.key.Line)
			if v := resolve(f.val); v.Kind == yaml.SequenceNode {
				for j, s := range v.Content {
					t.mark(fmt.Sprintf("remove[%d]", j), resolve(s).Line)
				}
			}
		case "stages":
			t.mark(key, f.key.Line)
			t.walkStages(f.val)
		default:
			if strings.HasPrefix(key, extensionPrefix) {
				continue // a block of shared settings, for anchors (&x) to be merged in stages
			}
			t.unknown(f.key, "", fileKeys)
		}
	}
}

func (t *tree) walkStages(n *yaml.Node) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		t.add(n.Line, "stages", fmt.Sprintf("must be a list of stages (- name: ...), not %s", kindName(n)), true)
		return
	}
	for i, item := range n.Content {
		if m := resolve(item); m.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(m.Content); j += 2 {
				if k, v := resolve(m.Content[j]), resolve(m.Content[j+1]); k.Value == "name" && v.Kind == yaml.ScalarNode && stageNamePattern.MatchString(v.Value) {
					t.stages[i] = v.Value
				}
			}
		}
	}
	for i, item := range n.Content {
		path := fmt.Sprintf("stages[%d]", i)
		item = resolve(item)
		t.mark(path, item.Line)
		if item.Kind != yaml.MappingNode {
			t.add(item.Line, path, fmt.Sprintf("must be a mapping (name: ..., plugin: ..., signals: [...]), not %s", kindName(item)), true)
			continue
		}
		for _, f := range t.fields(item, path) {
			key := f.key.Value
			kp := path + "." + key
			switch key {
			case "signals":
				t.mark(kp, f.key.Line)
				if v := resolve(f.val); v.Kind == yaml.SequenceNode {
					for j, s := range v.Content {
						t.mark(fmt.Sprintf("%s[%d]", kp, j), resolve(s).Line)
					}
				}
			case "batch":
				t.mark(kp, f.key.Line)
				if v := resolve(f.val); v.Kind == yaml.MappingNode {
					for _, bf := range t.fields(v, kp) {
						if bk := bf.key.Value; contains(batchKeys, bk) {
							t.mark(kp+"."+bk, bf.key.Line)
						} else {
							t.unknown(bf.key, kp, batchKeys)
						}
					}
				}
			default:
				if contains(stageKeys, key) {
					t.mark(kp, f.key.Line)
				} else {
					t.unknown(f.key, path, stageKeys)
				}
			}
		}
	}
}

// unknown reports a key the block does not have, suggesting the one probably meant.
func (t *tree) unknown(key *yaml.Node, parent string, known []string) {
	path := key.Value
	if parent != "" {
		path = parent + "." + key.Value
	}
	msg := "unknown key"
	if s := suggest(key.Value, known); s != "" {
		msg += " (did you mean " + s + "?)"
	} else {
		msg += " (known keys: " + strings.Join(known, ", ") + ")"
	}
	t.add(key.Line, path, msg, false)
}

type field struct{ key, val *yaml.Node }

// fields lists a mapping's key/value pairs, expanding merge keys (<<: *anchor) as YAML does: keys
// written in the mapping win over merged ones. A key written twice is reported (the YAML decoder
// refuses it too), and so is a key that is not a plain scalar.
func (t *tree) fields(m *yaml.Node, path string) []field {
	var own, merged []field
	first := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := resolve(m.Content[i]), m.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merged = append(merged, t.mergeFields(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			t.add(k.Line, path, fmt.Sprintf("a key must be a plain name, not %s", kindName(k)), true)
			continue
		}
		kp := k.Value
		if path != "" {
			kp = path + "." + k.Value
		}
		if line, dup := first[k.Value]; dup {
			t.add(k.Line, kp, fmt.Sprintf("is set twice (first on line %d); keep one", line), true)
			continue
		}
		first[k.Value] = k.Line
		own = append(own, field{k, v})
	}
	for _, f := range merged {
		if _, ok := first[f.key.Value]; !ok {
			first[f.key.Value] = f.key.Line
			own = append(own, f)
		}
	}
	return own
}

// mergeFields are the fields a merge key's value (a mapping, or a list of them) brings in; earlier
// mappings of a list win.
func (t *tree) mergeFields(v *yaml.Node, path string) []field {
	v = resolve(v)
	switch v.Kind {
	case yaml.MappingNode:
		return t.fields(v, path)
	case yaml.SequenceNode:
		var out []field
		have := map[string]bool{}
		for _, m := range v.Content {
			if m = resolve(m); m.Kind != yaml.MappingNode {
				t.add(m.Line, path, "a merge key (<<) takes a mapping or a list of mappings", true)
				continue
			}
			for _, f := range t.fields(m, path) {
				if !have[f.key.Value] {
					have[f.key.Value] = true
					out = append(out, f)
				}
			}
		}
		return out
	}
	t.add(v.Line, path, "a merge key (<<) takes a mapping or a list of mappings", true)
	return nil
}

// resolve follows aliases (*anchor) to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 64; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return strconv.Quote(n.Value)
	}
	return "empty"
}

func docLine(n *yaml.Node) int {
	if len(n.Content) > 0 {
		return n.Content[0].Line
	}
	return n.Line
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns the known key closest to key when it is close enough to be a typo.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if strings.EqualFold(k, key) || strings.EqualFold(strings.ReplaceAll(k, "_", ""), strings.NewReplacer("-", "", "_", "").Replace(key)) {
			return k
		}
		if d := editDistance(strings.ToLower(key), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
