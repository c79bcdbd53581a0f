package workflow_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The products files of the CSV batch tests are generated, deterministically, by
// generateProducts. Regenerate them with
//
//	go test ./pkg/workflow/ -run TestProductsFiles -update-products
var updateProducts = flag.Bool("update-products", false, "rewrite testdata/products*.csv from the generator")

// productsFile and badRowsFile are the committed test data.
const (
	productsFile = "testdata/products.csv"
	badRowsFile  = "testdata/products_bad_rows.csv"
)

// badPrices are the rows of products_bad_rows.csv whose price does not parse.
var badPrices = map[int]string{7: "N/A", 31: "free", 52: ""}

var (
	productCategories = []string{"beauty", "fragrances", "furniture", "groceries", "home-decoration",
		"kitchen-accessories", "laptops", "mens-shirts", "mens-shoes", "mens-watches", "mobile-accessories"}
	productAdjectives = []string{"Classic", "Compact", "Deluxe", "Eco", "Essential", "Premium", "Smart", "Vintage"}
	productNouns      = []string{"Bottle", "Chair", "Lamp", "Mug", "Phone", "Shirt", "Shoe", "Watch"}
)

// splitmix is a tiny deterministic generator (SplitMix64), so the files never depend on
// a library's random sequence.
type splitmix uint64

func (s *splitmix) intn(n int) int {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return int((z ^ (z >> 31)) % uint64(n))
}

// generateProducts writes a products file: the header and rows data rows, prices in
// cents up to 1999.99, integer stock, ratings 1.00 to 5.00; a row in bad gets that price
// text instead.
func generateProducts(rows int, seed uint64, bad map[int]string) []byte {
	var b bytes.Buffer
	b.WriteString("id,title,category,price,stock,rating\n")
	s := splitmix(seed)
	for id := 1; id <= rows; id++ {
		category := productCategories[s.intn(len(productCategories))]
		title := productAdjectives[s.intn(len(productAdjectives))] + " " + productNouns[s.intn(len(productNouns))] + fmt.Sprintf(" %d", id)
		cents := 100 + s.intn(199900)
		price := fmt.Sprintf("%d.%02d", cents/100, cents%100)
		if text, ok := bad[id]; ok {
			price = text
		}
		stock, rating := s.intn(250), 100+s.intn(401)
		fmt.Fprintf(&b, "%d,%s,%s,%s,%d,%d.%02d\n", id, title, category, price, stock, rating/100, rating%100)
	}
	return b.Bytes()
}

func TestProductsFiles(t *testing.T) {
	t.Parallel()
	for path, want := range map[string][]byte{
		productsFile: generateProducts(1000, 11, nil),
		badRowsFile:  generateProducts(60, 12, badPrices),
	} {
		if *updateProducts {
			require.NoError(t, os.WriteFile(filepath.FromSlash(path), want, 0o644))
		}
		got, err := os.ReadFile(filepath.FromSlash(path))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), "%s differs from the generator's output: rerun with -update-products", path)
		require.Less(t, len(got), 100_000, path)
	}
}
