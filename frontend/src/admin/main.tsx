import { mount } from '../mount';
import { App } from './App';

mount(App, 'the admin dashboard');
