package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines is the longest a function outside tests may be: past it, a
// function does more than one thing and wants splitting into its steps.
const maxFuncLines = 80

// TestCodebaseShape reads every Go file of the module (from the module
// root, two levels up) and fails naming each function outside tests
// longer than maxFuncLines and each exported name outside package main
// without a doc comment: what issue 14 left the codebase with, kept.
func TestCodebaseShape(t *testing.T) {
	root := filepath.Join("..", "..")
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, p := range shapeProblems(fset, f) {
			t.Errorf("%s:%s", rel, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d Go files below %s: not the module root?", files, root)
	}
}

// shapeProblems lists f's functions over maxFuncLines and, outside
// package main, its exported names without a doc comment.
func shapeProblems(fset *token.FileSet, f *ast.File) []string {
	var out []string
	line := func(p token.Pos) int { return fset.Position(p).Line }
	documented := func(groups ...*ast.CommentGroup) bool {
		for _, g := range groups {
			if g != nil {
				return true
			}
		}
		return f.Name.Name == "main"
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if n := line(d.End()) - line(d.Pos()) + 1; n > maxFuncLines {
				out = append(out, fmt.Sprintf("%d: %s is %d lines (at most %d)", line(d.Pos()), d.Name.Name, n, maxFuncLines))
			}
			if d.Name.IsExported() && !documented(d.Doc) {
				out = append(out, fmt.Sprintf("%d: %s has no doc comment", line(d.Pos()), d.Name.Name))
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() && !documented(d.Doc, s.Doc) {
						out = append(out, fmt.Sprintf("%d: type %s has no doc comment", line(s.Pos()), s.Name.Name))
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() && !documented(d.Doc, s.Doc, s.Comment) {
							out = append(out, fmt.Sprintf("%d: %s has no doc comment", line(n.Pos()), n.Name))
						}
					}
				}
			}
		}
	}
	return out
}
