// The synthsite spider (synthsite.Spec) as a script.
function parse(page) {
  const items = page.css('div.item').map(e => ({
    name: e.css('.name')[0].text(),
    price: e.css('.price')[0].text(),
  }));
  const links = page.css('a.l').map(a => a.attr('href'));
  return {items, links};
}
