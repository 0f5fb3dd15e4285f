package scaffold

import (
	"bytes"
	"go/format"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/platoim/plato/internal/gomodtest"
)

// sdkDir is the repository's sdk/ folder.
func sdkDir(t *testing.T) string { return filepath.Join(gomodtest.Root(t), "sdk") }

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "max-size", "rate_limit2", "x" + strings.Repeat("y", 63)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Auth", "1st", "-a", "a b", "a/b", "../a", "a.b", "x" + strings.Repeat("y", 64), "é"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestTypeName(t *testing.T) {
	for in, want := range map[string]string{"auth": "Auth", "max-size": "MaxSize", "rate_limit2": "RateLimit2", "a--b": "AB", "x-1": "X1"} {
		if got := typeName(in); got != want {
			t.Errorf("typeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGenerateRefusesBadNameAndExistingDir(t *testing.T) {
	dir := t.TempDir()
	if err := Generate(dir, "Bad Name", "", Options{}); err == nil {
		t.Error("bad name accepted")
	}
	if err := os.Mkdir(filepath.Join(dir, "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Generate(dir, "taken", "", Options{})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("existing dir: got %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "taken")); len(ents) != 0 {
		t.Errorf("wrote into the existing dir: %v", ents)
	}
	if err := Generate(dir, "fine", "", Options{SDKReplace: filepath.Join(dir, "no-sdk-here")}); err == nil {
		t.Error("a replace path without go.mod was accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "fine")); !os.IsNotExist(err) {
		t.Errorf("a failed Generate left %s behind", filepath.Join(dir, "fine"))
	}
}

func TestGenerateFiles(t *testing.T) {
	dir := t.TempDir()
	if err := Generate(dir, "max-size", "", Options{Module: "corp.example/plato/max-size"}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "max-size")
	for _, f := range []string{"go.mod", "main.go", "max-size.go", "max-size_test.go", "README.md"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".go") {
			formatted, err := format.Source(b)
			if err != nil {
				t.Fatalf("%s does not parse: %v\n%s", f, err, b)
			}
			if !bytes.Equal(formatted, b) {
				t.Errorf("%s is not gofmt-clean", f)
			}
		}
	}
	mod, _ := os.ReadFile(filepath.Join(root, "go.mod"))
	if !strings.HasPrefix(string(mod), "module corp.example/plato/max-size\n") || strings.Contains(string(mod), "replace") || strings.Contains(string(mod), "require") {
		t.Errorf("go.mod without a local SDK:\n%s", mod)
	}
	src, _ := os.ReadFile(filepath.Join(root, "max-size.go"))
	if !strings.Contains(string(src), "type MaxSizeStage struct") || !strings.Contains(string(src), `Name: "max-size"`) {
		t.Errorf("max-size.go does not name the stage:\n%s", src)
	}
}

// TestGeneratedProjectBuildsAndPasses generates a plugin against this repository's SDK and runs
// what its README tells the author to run: go mod tidy, go test, go build.
func TestGeneratedProjectBuildsAndPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module with the go command")
	}
	dir := t.TempDir()
	if err := Generate(dir, "hello", DefaultSDKModule, Options{SDKReplace: sdkDir(t)}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "hello")
	mod, _ := os.ReadFile(filepath.Join(root, "go.mod"))
	abs, err := filepath.Abs(sdkDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "\t"+DefaultSDKModule+" => "+abs+"\n") ||
		!strings.Contains(string(mod), "\t"+DefaultSDKModule+"/stage => "+filepath.Join(abs, "stage")+"\n") {
		t.Fatalf("go.mod does not replace the SDK's modules:\n%s", mod)
	}
	gomodtest.Go(t, root, "mod", "tidy")
	// A plugin author's build carries go-plugin and gRPC, never Plato's RPC stack.
	for _, args := range [][]string{{"list", "-m", "all"}, {"list", "-deps", "./..."}} {
		if out := gomodtest.Go(t, root, args...); strings.Contains(out, "github.com/cloudwego/") {
			t.Errorf("go %s of a scaffolded stage names Kitex or netpoll:\n%s", strings.Join(args, " "), out)
		}
	}
	gomodtest.Go(t, root, "vet", "./...")
	gomodtest.Go(t, root, "test", "-count=1", "./...")
	gomodtest.Go(t, root, "build", "-o", "hello", ".")
	if fi, err := os.Stat(filepath.Join(root, "hello")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("no executable built: %v", err)
	}
}

func TestGenerateQuotesAReplacePathWithSpaces(t *testing.T) {
	dir := t.TempDir()
	sdk := filepath.Join(dir, "my sdk")
	if err := os.Mkdir(sdk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(sdk, "stage"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sdk, "go.mod"), []byte("module "+DefaultSDKModule+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sdk, "stage", "go.mod"), []byte("module "+DefaultSDKModule+"/stage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Generate(dir, "spaced", "", Options{SDKReplace: sdk}); err != nil {
		t.Fatal(err)
	}
	mod, _ := os.ReadFile(filepath.Join(dir, "spaced", "go.mod"))
	if want := DefaultSDKModule + ` => "` + sdk + `"`; !strings.Contains(string(mod), want) {
		t.Errorf("go.mod does not contain %s:\n%s", want, mod)
	}
	if !strings.Contains(string(mod), "require "+DefaultSDKModule+"/stage "+DefaultSDKVersion) {
		t.Errorf("go.mod does not require the SDK:\n%s", mod)
	}
}
