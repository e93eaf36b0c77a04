'use strict';
// Pure computation; validate declines a temperature below absolute zero.
const TO_KELVIN = {
  C: (value) => value + 273.15,
  F: (value) => ((value - 32) * 5) / 9 + 273.15,
  K: (value) => value,
};
const FROM_KELVIN = {
  C: (kelvin) => kelvin - 273.15,
  F: (kelvin) => ((kelvin - 273.15) * 9) / 5 + 32,
  K: (kelvin) => kelvin,
};
const SYMBOLS = { C: '°C', F: '°F', K: 'K' };

// To a billionth of a kelvin: -273.15 °C is 0 K, not the -5.7e-14 floating
// point makes of it.
const kelvinOf = ({ value, from }) => Math.round(TO_KELVIN[from](value) * 1e9) / 1e9;

module.exports = {
  name: 'CONVERT_TEMPERATURE',
  similes: ['TEMPERATURE_CONVERSION', 'CELSIUS_TO_FAHRENHEIT'],
  description: 'Convert a temperature between Celsius, Fahrenheit and Kelvin.',
  validate: async (runtime, message) => Number.isFinite(message.content.value) && kelvinOf(message.content) >= 0,
  handler: async (runtime, message, state, options, callback) => {
    const { value, from, to } = message.content;
    const converted = Math.round(FROM_KELVIN[to](kelvinOf(message.content)) * 100) / 100;
    const text = `${value} ${SYMBOLS[from]} is ${converted} ${SYMBOLS[to]}`;
    await callback({ text, actions: ['CONVERT_TEMPERATURE'] });
    return { success: true, text, values: { value: converted, unit: to } };
  },
  examples: [[
    { name: '{{user}}', content: { text: 'What is 20 °C in Fahrenheit?' } },
    { name: '{{agent}}', content: { text: '20 °C is 68 °F', actions: ['CONVERT_TEMPERATURE'] } },
  ]],
};
