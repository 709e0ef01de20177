// The package as a CommonJS consumer loads it: require() of an ES module, which Node 20.19+,
// 22.12+, 24 and 26 do without a flag (and Bun too).
const wsrfc = require('wsrfc');

import('./round-trip.mjs').then(({ roundTrip }) => roundTrip(wsrfc, 'require'));
