package shopsite

import (
	"fmt"
	"slices"
)

// product is one product page. Everything shown is derived from this
// table, so Expected can never disagree with the pages.
type product struct {
	id    int
	title string // "" for the product without a title, " " for the blank one
	brand string
	tags  []string
}

// The sections products live in, by how a crawler reaches them.
var (
	// toolsPage1 and toolsPage2 are /c/tools and /c/tools?page=2.
	toolsPage1 = []int{1, 2, 3, 4, 5, 6}
	toolsPage2 = []int{7, 8, 9, 10}
	garden     = []int{11, 12, 13, 14, 15, 16}
	kitchen    = []int{17, 18, 23, 24}
	// sitemapOnly are linked from nowhere: only the sitemap finds them.
	sitemapOnly = []int{19, 20, 21, 22}
	// memberIDs are /members/p/N, behind the redirect-to-login section.
	memberIDs = []int{25, 26, 27}
)

// Trap products: real product pages a correct crawl never requests.
const (
	archiveID    = 50 // linked only from /c/archive, linked only from the footer
	clearanceID  = 90 // /p/clearance, behind rel="nofollow"
	clearance2ID = 91 // /p/clearance-2, behind rel="noopener nofollow"
	secret1ID    = 92 // /p/secret-1, linked, disallowed for shopbot
	secret2ID    = 93 // /p/secret-2, in the sitemap, disallowed for shopbot
)

var products = map[int]product{
	1:  {1, "Claw Hammer", "forge", []string{"tools", "steel"}},
	2:  {2, "Adjustable Wrench", "forge", []string{"tools", "steel"}},
	3:  {3, "Cordless Drill", "voltix", []string{"tools", "power"}},
	4:  {4, "Spirit Level", "forge", []string{"tools"}},
	5:  {5, "Tape Measure", "metrix", []string{"tools", "measure"}},
	6:  {6, "Hand Saw", "forge", []string{"tools", "wood"}},
	7:  {7, "Utility Knife", "metrix", []string{"tools", "blade"}},
	8:  {8, "Socket Set", "forge", []string{"tools", "steel", "set"}},
	9:  {9, "Stud Finder", "voltix", []string{"tools", "power"}},
	10: {10, "Workbench Clamp", "forge", []string{"tools"}},
	11: {11, "Garden Hose", "greenly", []string{"garden", "water"}},
	12: {12, "Salt & Pepper Planter", "greenly", []string{"garden", "pots"}}, // an entity in the title
	13: {13, "Pruning Shears", "greenly", []string{"garden", "blade"}},
	14: {14, "Watering Can", "greenly", []string{"garden", "water"}},
	15: {15, "Compost Bin", "terra", []string{"garden"}},
	16: {16, "Rake", "terra", []string{"garden", "wood"}},
	17: {17, "Chef's Knife", "cucina", []string{"kitchen", "blade"}},
	18: {18, "Crème Brûlée Torch", "cucina", []string{"kitchen", "gas"}}, // non-ASCII
	19: {19, "Hidden Lantern", "lumo", []string{"sitemap", "light"}},
	20: {20, "Hidden Tent", "lumo", []string{"sitemap", "camping"}},
	21: {21, "Hidden Stove", "lumo", []string{"sitemap", "gas"}},
	22: {22, "Hidden Hammock", "lumo", []string{"sitemap"}},
	23: {23, "", "cucina", []string{"kitchen"}},  // no <h1>: not an item
	24: {24, " ", "cucina", []string{"kitchen"}}, // blank <h1>: not an item
	25: {25, "Members Grill", "cucina", []string{"members", "gas"}},
	26: {26, "Members Smoker", "cucina", []string{"members"}},
	27: {27, "Members Pizza Oven", "cucina", []string{"members", "stone"}},

	archiveID:    {archiveID, "Archived Anvil", "forge", []string{"archive"}},
	clearanceID:  {clearanceID, "Clearance Bucket", "terra", []string{"trap"}},
	clearance2ID: {clearance2ID, "Clearance Broom", "terra", []string{"trap"}},
	secret1ID:    {secret1ID, "Secret Prototype", "voltix", []string{"trap"}},
	secret2ID:    {secret2ID, "Secret Sample", "voltix", []string{"trap"}},
}

// itemIDs are the products whose pages a correct crawl turns into items.
func itemIDs() []int {
	var ids []int
	for _, s := range [][]int{toolsPage1, toolsPage2, garden, kitchen, sitemapOnly} {
		ids = append(ids, s...)
	}
	ids = slices.DeleteFunc(ids, func(id int) bool { return products[id].title == "" || products[id].title == " " })
	return ids
}

// eurCents is the price in euro cents; the USD price is derived from it,
// so a crawl without the currency cookie gets every price wrong.
func eurCents(id int) int { return 500 + (id*7919)%9500 }

func usdCents(id int) int { return eurCents(id) * 108 / 100 }

// onSale products also show the price they were: a regex field that
// matches on them and is missing (DESIGN.md: no match) on the others.
func onSale(id int) bool { return id%5 == 0 }

func wasCents(cents int) int { return cents * 5 / 4 }

func money(cents int) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

func sku(id int) string { return fmt.Sprintf("SH-%04d", id) }

func gtin(id int) string { return fmt.Sprintf("4006381%06d", id) }

// apiProduct is one product of the JSON API. Field order is the
// encoding order; the nested object's keys are in sorted order so its
// compact JSON text is the same whoever re-encodes it.
type apiProduct struct {
	ID         int      `json:"id"`
	Name       *string  `json:"name"`
	SKU        string   `json:"sku"`
	PriceCents int      `json:"price_cents"`
	Currency   string   `json:"currency"`
	InStock    bool     `json:"in_stock"`
	Tags       []string `json:"tags"`
	Discount   *int     `json:"discount"`
	Dims       dims     `json:"dims"`
	Rating     float64  `json:"rating"`
}

type dims struct {
	H int `json:"h"`
	W int `json:"w"`
}

// apiPages is the number of pages of /api/products; apiPerPage products
// each.
const (
	apiPages   = 3
	apiPerPage = 3
)

func ptr[T any](v T) *T { return &v }

// apiCatalog is the API's products 101..109, each exercising something:
// numbers, booleans, a list, null (discount; the name of 104), an empty
// name (106), an object (dims) and a fraction (rating).
func apiCatalog(usd bool) []apiProduct {
	names := []*string{ptr("API Widget"), ptr("API Gadget"), ptr("API Gizmo"), nil, ptr("API Sprocket"),
		ptr(""), ptr("API Flange"), ptr("API Gasket"), ptr("API Bracket")}
	tags := [][]string{{"api", "widget"}, {"api", "gadget"}, {"api"}, {"api", "ghost"}, {"solo"},
		{"api", "blank"}, {"api", "flange"}, {"api", "seal"}, {"api", "mount"}}
	ratings := []float64{4.5, 3, 5, 1, 4.25, 2, 3.5, 4, 0.5}
	out := make([]apiProduct, len(names))
	for i := range names {
		id := 101 + i
		p := apiProduct{
			ID: id, Name: names[i], SKU: sku(id), PriceCents: eurCents(id), Currency: "EUR",
			InStock: id%4 != 3, Tags: tags[i], Dims: dims{H: 10 + i, W: 20 + 2*i}, Rating: ratings[i],
		}
		if usd {
			p.PriceCents, p.Currency = usdCents(id), "USD"
		}
		if id%3 == 2 {
			p.Discount = ptr(5 * (i + 1))
		}
		out[i] = p
	}
	return out
}
