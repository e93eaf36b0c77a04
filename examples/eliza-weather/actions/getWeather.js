'use strict';
// The current weather from OpenWeather's API: the key is the organization's
// OPENWEATHER_API_KEY secret, the API's address the OPENWEATHER_API_URL
// setting, and the request goes through runtime.fetch (the egress broker,
// which allows only plugin.json's allowedDomains).

module.exports = {
  name: 'GET_WEATHER',
  similes: ['WEATHER', 'CURRENT_WEATHER'],
  description: 'The current weather of a city.',
  // Without a key there is nothing to ask: the action declines.
  validate: async (runtime) => Boolean(runtime.getSetting('OPENWEATHER_API_KEY')),
  handler: async (runtime, message, state, options, callback) => {
    const { city } = message.content;
    const units = message.content.units ?? 'metric';
    const query = new URLSearchParams({ q: city, units, appid: runtime.getSetting('OPENWEATHER_API_KEY') });
    runtime.logger.info('weather for', city, 'in', units, 'units');
    const response = await runtime.fetch(`${runtime.getSetting('OPENWEATHER_API_URL')}/data/2.5/weather?${query}`);
    if (response.status === 404) {
      // An unknown city is an answer, not the plugin's failure.
      const text = `OpenWeather knows no city named ${city}`;
      await callback({ text });
      return { success: true, text, values: { found: false } };
    }
    if (!response.ok) return { success: false, error: `OpenWeather answered ${response.status}` };
    const body = await response.json();
    const symbol = units === 'metric' ? '°C' : '°F';
    const weather = {
      found: true,
      city: body.name,
      country: body.sys?.country ?? null,
      description: body.weather?.[0]?.description ?? null,
      temperature: body.main.temp,
      feelsLike: body.main.feels_like,
      humidity: body.main.humidity,
      windSpeed: body.wind?.speed ?? null,
      units,
    };
    const text = `${weather.city}: ${weather.temperature}${symbol} (feels like ${weather.feelsLike}${symbol}), `
      + `${weather.description}, humidity ${weather.humidity}%`;
    await callback({ text, actions: ['GET_WEATHER'] });
    return { success: true, text, values: weather };
  },
  examples: [[
    { name: '{{user}}', content: { text: 'What is the weather in Oslo?' } },
    { name: '{{agent}}', content: { text: 'Oslo: 4.2°C (feels like 1.3°C), light rain, humidity 87%', actions: ['GET_WEATHER'] } },
  ]],
};
