package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"go.yaml.in/yaml/v3"
)

// A file with `extends: <app ID>` starts from that file's chain (default.yaml for
// `extends: default`, in the same directory) and changes it by stage name:
//
//	version: 1
//	extends: default
//	remove: [qosroute]            # drop inherited stages
//	stages:
//	  - name: ratelimit           # a new stage: complete, like in any file
//	    after: auth               # placed after (or before:) a stage; default: at the end
//	    plugin: ratelimit
//	    signals: [uplink]
//	  - name: retransmit          # an inherited stage: the keys written override its own;
//	    config: {max_attempts: 3} # config is merged key by key (null removes a key)
//	  - name: sessionbind         # name and an anchor only: moves the stage
//	    before: auth
//
// The entries apply in the order written, each to the chain the ones above it left, so an anchor
// names a stage of the extended file that is not removed, or one this file added above it. The
// extended file must extend nothing itself: one level, so there are no chains of files to follow
// and no cycles. A change to the extended file re-derives every file that extends it (the
// pipeline host reloads them; Dependents lists them).

// extend applies the document's remove list and stages to the base chain.
func (c *checker) extend(d *fileDoc) []Stage {
	chain := make([]Stage, 0, len(c.base.Stages)+len(d.Stages))
	inherited := map[string]bool{}
	for _, s := range c.base.Stages {
		s.Signals = slices.Clone(s.Signals)
		s.Origin = OriginInherited
		chain = append(chain, s)
		inherited[s.Name] = true
	}
	baseName := c.base.AppID
	removed := map[string]int{}
	if d.Remove != nil {
		list, ok := d.Remove.([]any)
		if !ok {
			c.bad("remove", "must be a list of stage names, e.g. [qosroute], got %s", show(d.Remove))
		}
		for i, x := range list {
			ip := fmt.Sprintf("remove[%d]", i)
			name, isStr := x.(string)
			switch {
			case !isStr:
				c.bad(ip, "must be a stage name, got %s", show(x))
			case !inherited[name]:
				c.bad(ip, "%q is not a stage of %s (its stages: %s)", name, baseName, stageNameList(c.base.Stages))
			default:
				if j, dup := removed[name]; dup {
					c.bad(ip, "%q is already listed at remove[%d]", name, j)
					continue
				}
				removed[name] = i
				chain = slices.DeleteFunc(chain, func(s Stage) bool { return s.Name == name })
			}
		}
	}

	names := map[string]int{}
	for i := range d.Stages {
		p := fmt.Sprintf("stages[%d]", i)
		sd := &d.Stages[i]
		name, _ := sd.Name.(string)
		if j, dup := names[name]; dup && name != "" {
			c.bad(p+".name", "%q is already the name of stages[%d]; names must be unique", name, j)
			continue
		}
		names[name] = i
		if j, gone := removed[name]; gone {
			c.bad(p+".name", "%q is removed by remove[%d]; keep one of the two", name, j)
			continue
		}
		at := slices.IndexFunc(chain, func(s Stage) bool { return s.Name == name })
		anchor, where, placed := c.anchor(p, sd, name)
		var s Stage
		if at >= 0 && inherited[name] {
			s = c.stage(p, sd, &chain[at])
			switch {
			case !onlyPlacement(sd):
				s.Origin = OriginOverridden
			case anchor != "":
				s.Origin = OriginMoved
			}
		} else {
			s = c.stage(p, sd, nil)
			s.Origin = OriginAdded
		}
		if !placed {
			continue
		}
		if at >= 0 {
			chain = slices.Delete(chain, at, at+1)
		}
		switch {
		case anchor == "" && at >= 0:
			chain = slices.Insert(chain, at, s) // in place
		case anchor == "":
			chain = append(chain, s)
		default:
			k := slices.IndexFunc(chain, func(s Stage) bool { return s.Name == anchor })
			if k < 0 {
				c.bad(p+"."+where, "%q is not in the chain at this point (%s); anchor on one of them, or list %q before this stage",
					anchor, stageNameList(chain), anchor)
				if at >= 0 {
					chain = slices.Insert(chain, at, s)
				}
				continue
			}
			if where == "after" {
				k++
			}
			chain = slices.Insert(chain, k, s)
		}
	}
	return chain
}

// anchor reads a stage's after or before: the stage it is placed next to ("" for none) and
// which of the two keys named it.
func (c *checker) anchor(p string, d *stageDoc, self string) (anchor, where string, ok bool) {
	after, hasAfter := c.str(p+".after", d.After, false)
	before, hasBefore := c.str(p+".before", d.Before, false)
	switch {
	case hasAfter && hasBefore:
		c.bad(p+".before", "give after or before, not both")
		return "", "", false
	case hasAfter:
		anchor, where = after, "after"
	case hasBefore:
		anchor, where = before, "before"
	default:
		return "", "", d.After == nil && d.Before == nil // a non-string value was reported
	}
	if anchor == self {
		c.bad(p+"."+where, "a stage cannot be placed next to itself")
		return "", "", false
	}
	return anchor, where, true
}

// onlyPlacement reports whether a stage entry sets nothing but its name and an anchor.
func onlyPlacement(d *stageDoc) bool {
	return d.Plugin == nil && d.SHA256 == nil && d.Signals == nil && d.Timeout == nil &&
		d.OnFailure == nil && d.Batch == nil && d.Config == nil
}

func stageNameList(stages []Stage) string {
	if len(stages) == 0 {
		return "none"
	}
	var b []byte
	for i, s := range stages {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, s.Name...)
	}
	return string(b)
}

// mergeConfig merges over (a stage's config in an extending file) into base (the inherited one):
// mappings key by key, recursively; any other value replaces; null removes the key.
func mergeConfig(base, over json.RawMessage) (json.RawMessage, error) {
	var b, o map[string]any
	if len(base) > 0 {
		if err := json.Unmarshal(base, &b); err != nil {
			return nil, err
		}
	}
	if err := json.Unmarshal(over, &o); err != nil {
		return nil, err
	}
	if b == nil {
		b = map[string]any{}
	}
	mergeMaps(b, o)
	return json.Marshal(b)
}

func mergeMaps(dst, src map[string]any) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		sm, srcMap := v.(map[string]any)
		dm, dstMap := dst[k].(map[string]any)
		if srcMap && dstMap {
			mergeMaps(dm, sm)
			continue
		}
		dst[k] = v
	}
}

// findAppFile is the pipeline file of appID in dir ("" when it has none).
func findAppFile(dir, appID string) (string, error) {
	var found []string
	for _, ext := range []string{".yaml", ".yml"} {
		p := filepath.Join(dir, appID+ext)
		switch _, err := os.Stat(p); {
		case err == nil:
			found = append(found, p)
		case !errors.Is(err, fs.ErrNotExist):
			return "", ioError(p, "cannot read the pipeline file", err)
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 2:
		return "", &Error{File: found[1], Msg: fmt.Sprintf("app %s also has %s; keep one of them", appID, filepath.Base(found[0]))}
	}
	return found[0], nil
}

// ExtendsOf reads the extends key of the pipeline file at path without checking the rest: ""
// when it has none, or cannot be read or parsed (loading it reports why).
func ExtendsOf(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return extendsOf(data)
}

func extendsOf(data []byte) string {
	var doc struct {
		Extends any `yaml:"extends"`
	}
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return ""
	}
	s, _ := doc.Extends.(string)
	return s
}

// loadBase loads the file named by `extends: name` in the file at path (app self). It must exist
// in the same directory and extend nothing itself.
func loadBase(path, self, name, pluginDir string) (*File, error) {
	dir := filepath.Dir(path)
	if name == self {
		return nil, fmt.Errorf("a file cannot extend itself")
	}
	bp, err := findAppFile(dir, name)
	if err != nil {
		return nil, err
	}
	if bp == "" {
		return nil, fmt.Errorf("there is no %s.yaml in %s to extend", name, dir)
	}
	switch up := ExtendsOf(bp); {
	case up == self:
		return nil, fmt.Errorf("%s extends %s in turn: a cycle; only a file that extends nothing can be extended", bp, self)
	case up != "":
		return nil, fmt.Errorf("%s itself extends %s; only a file that extends nothing can be extended (extend %s instead, or copy what you need)", bp, up, up)
	}
	f, err := LoadFile(bp, pluginDir)
	if err != nil {
		return nil, err
	}
	f.AppID = name
	return f, nil
}

// Dependents lists, sorted, the app IDs of dir whose file extends appID: the pipelines to derive
// again when appID's file changes.
func Dependents(dir, appID string) []string {
	files, _ := listDir(dir)
	var out []string
	for app, path := range files {
		if app != appID && ExtendsOf(path) == appID {
			out = append(out, app)
		}
	}
	sort.Strings(out)
	return out
}
