'use strict';
// An elizaOS plugin, as elizaOS loads one: a plugin object with its actions.
// The engine's adapter ("adapter": "eliza" in plugin.json) runs each action
// by its name, with a runtime whose getSetting reads the granted secrets
// (then plugin.json's settings) and whose fetch goes through the egress
// broker.
const getWeather = require('./actions/getWeather');
const convertTemperature = require('./actions/convertTemperature');

const weatherPlugin = {
  name: 'eliza-weather',
  description: 'Current weather from OpenWeather, and temperature conversions.',
  actions: [getWeather, convertTemperature],
  providers: [],
  evaluators: [],
};

module.exports = weatherPlugin;
module.exports.default = weatherPlugin;
