import { mount } from '../mount';
import { App } from './App';

mount(App, 'your files');
