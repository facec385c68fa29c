// A spider for testdata/shop.html: css, xpath, attr and nested queries.
function parse(page) {
  const items = page.css('div.product').map(p => ({
    id: p.attr('data-id'),
    name: p.css('.name')[0].text(),
    price: Number(p.xpath('.//span[@class="price"]')[0].text()),
    tags: p.css('ul.tags li').map(li => li.text()),
    missing: p.attr('nope'),
    rel: p.css('a.more')[0].attr('rel'),
  }));
  const links = page.xpath('//a/@href').map(a => a.text());
  return {items, links};
}
