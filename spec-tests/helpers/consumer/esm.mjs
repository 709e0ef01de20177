// The package as an ES module consumer loads it.
import * as wsrfc from 'wsrfc';
import { roundTrip } from './round-trip.mjs';

await roundTrip(wsrfc, 'import');
